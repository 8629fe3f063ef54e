// Implicit-GEMM 2-D convolution: forward, backward-data and backward-filter, for every stride,
// padding, dilation and group count, without an im2col buffer (operand tiles are gathered from
// the tensors straight into shared memory).
//
// Each pass is a GEMM  D[M x Ng] = A[M x Kr] * B[Ng x Kr]^T  per group (g = blockIdx.z / splits):
//
//   mode 0, forward       M = N*P*Q (output pixels)  Ng = Kg (out channels)  Kr = R*S*Cg
//                         A = x in NHWC, gathered;   B = w in KRSC (row nn = filter nn)
//   mode 1, backward-data M = N*Hq*Wq (the input pixels of one stride phase)   Ng = Cg
//                         Kr = rn*sn*Kg (the taps that reach that phase); one GEMM per phase
//                         A = gy in NHWC, gathered; B = w in "CRSK" (row c = w[:, c] of the
//                         group, k innermost)
//   mode 2, backward-filt M = Kg (out channels)      Ng = Cg*R*S             Kr = N*P*Q
//                         A = gy in NCHW (row = channel, Kr contiguous within an image);
//                         B = x in NCHW, gathered (row = (c, r, s))
//
// Outputs are written in NCHW (forward, backward-data) or KCRS (backward-filter) directly from the
// accumulators. Backward-filter may split Kr over `splits` blocks (blockIdx.z % splits); each split
// then writes its float32 partial to a workspace and fw_splitk_reduce sums the splits in a fixed
// order: deterministic, no atomics anywhere.
//
// Two main loops:
//   fw_conv_mma   tensor cores via inline-PTX mma.sync (m16n8k16 f16 or m16n8k8 tf32), f32
//                 accumulators, multi-stage cp.async pipeline, ldmatrix for f16 fragments. sm_80+.
//   fw_conv_ffma  exact float32 FMA path (also takes f16 inputs), any architecture.
//
// Epilogue (forward only): y = act(acc + bias[k] + residual[n,k,p,q]), act in {none, ReLU, SiLU}.

#include "common.cuh"

// The last ten describe one stride phase of backward-data (mode 1; the other modes ignore them):
// the input pixels h = oh + hq*sh (hq < Hq), w = ow + wq*sw (wq < Wq), and the only taps that can
// reach them, r = r0 + ri*rst (ri < rn), s = s0 + si*sst (si < sn). Splitting backward-data into
// sh*sw such GEMMs skips the stride holes instead of multiplying zeros (4x fewer MACs at stride 2).
#define FW_CONV_ARGS                                                                          \
  int N, int C, int H, int W, int K, int R, int S, int P, int Q, int sh, int sw, int ph,     \
      int pw, int dh, int dw, int groups, int oh, int ow, int r0, int rst, int rn, int s0,   \
      int sst, int sn, int Hq, int Wq
#define FW_CONV_NAMES \
  N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw, dh, dw, groups, oh, ow, r0, rst, rn, s0, sst, sn, Hq, Wq

struct FwConv {
  int N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw, dh, dw, groups, Cg, Kg;
  int oh, ow, r0, rst, rn, s0, sst, sn, Hq, Wq;
  int M, Ng, Kr;
};

template <int MODE>
FW_HD FwConv fw_make_conv(FW_CONV_ARGS) {
  FwConv c;
  c.N = N; c.C = C; c.H = H; c.W = W; c.K = K; c.R = R; c.S = S; c.P = P; c.Q = Q;
  c.sh = sh; c.sw = sw; c.ph = ph; c.pw = pw; c.dh = dh; c.dw = dw; c.groups = groups;
  c.Cg = C / groups;
  c.Kg = K / groups;
  c.oh = oh; c.ow = ow; c.r0 = r0; c.rst = rst; c.rn = rn; c.s0 = s0; c.sst = sst; c.sn = sn;
  c.Hq = Hq; c.Wq = Wq;
  if (MODE == 0) {
    c.M = N * P * Q; c.Ng = c.Kg; c.Kr = R * S * c.Cg;
  } else if (MODE == 1) {
    c.M = N * Hq * Wq; c.Ng = c.Cg; c.Kr = rn * sn * c.Kg;
  } else {
    c.M = c.Kg; c.Ng = c.Cg * R * S; c.Kr = N * P * Q;
  }
  return c;
}

// Element offset of A[row, k] (or B[row, k]) in its source tensor, or -1 where the implicit matrix
// holds a zero (padding, stride holes, tile edges). For the vector loaders `k` is the first of a run
// of contiguous elements along Kr that never crosses a filter tap (checked on the host).
//
// Each offset is split in a part that depends only on the row (fw_*_row: computed once per thread
// before the main loop, since a thread loads the same rows in every k-tile) and a part that
// depends only on k (fw_*_col: once per k-tile, since a thread's column within the tile is fixed),
// combined by fw_*_at without any division. fw_a_offset / fw_b_offset compose the three (the host
// harness of the tests checks them against PyTorch).
struct FwIdxRow {
  long long base;
  int h, w;
  bool ok;
};
static_assert(sizeof(FwIdxRow) == 24, "ROW_BYTES in conv.py sizes the shared-memory row tables");
struct FwIdxCol {
  long long off;
  int h, w;
  bool ok;
};

template <int MODE>
FW_HD FwIdxRow fw_a_row(const FwConv& c, int g, int row) {
  FwIdxRow r;
  r.ok = row < c.M;
  r.base = 0;
  r.h = r.w = 0;
  if (!r.ok) return r;
  if (MODE == 0) {  // output pixel (n, p, q): the window's top-left corner in the input
    const int pq = c.P * c.Q;
    const int n = row / pq, rem = row - n * pq;
    const int p = rem / c.Q, q = rem - p * c.Q;
    r.base = (long long)n * c.H * c.W * c.C + g * c.Cg;
    r.h = p * c.sh - c.ph;
    r.w = q * c.sw - c.pw;
  } else if (MODE == 1) {  // input pixel (n, oh + hq*sh, ow + wq*sw) of the phase
    const int hwq = c.Hq * c.Wq;
    const int n = row / hwq, rem = row - n * hwq;
    const int hq = rem / c.Wq, wq = rem - hq * c.Wq;
    r.base = (long long)n * c.P * c.Q * c.K + g * c.Kg;
    r.h = hq;
    r.w = wq;
  } else {  // output channel of gy (NCHW)
    r.base = (long long)(g * c.Kg + row) * (c.P * c.Q);
  }
  return r;
}

template <int MODE>
FW_HD FwIdxCol fw_a_col(const FwConv& c, int k, int kend) {
  FwIdxCol o;
  o.ok = k < kend;
  o.off = 0;
  o.h = o.w = 0;
  if (!o.ok) return o;
  if (MODE == 0) {  // k = (r, s, ci)
    const int rs = k / c.Cg, ci = k - rs * c.Cg;
    const int r = rs / c.S, s = rs - r * c.S;
    o.h = r * c.dh;
    o.w = s * c.dw;
    o.off = ci;
  } else if (MODE == 1) {  // k = (ri, si, kk): tap (r, s) reaches output (hq + tp0/sh, wq + tq0/sw)
    const int rs = k / c.Kg, kk = k - rs * c.Kg;
    const int ri = rs / c.sn, si = rs - ri * c.sn;
    const int r = c.r0 + ri * c.rst, s = c.s0 + si * c.sst;
    const int tp0 = c.oh + c.ph - r * c.dh, tq0 = c.ow + c.pw - s * c.dw;
    if (tp0 % c.sh || tq0 % c.sw) {  // a stride hole (never for the taps of a phase)
      o.ok = false;
      return o;
    }
    o.h = tp0 / c.sh;
    o.w = tq0 / c.sw;
    o.off = kk;
  } else {  // k = (n, pq)
    const int pq = c.P * c.Q;
    const int n = k / pq, rem = k - n * pq;
    o.off = (long long)n * c.K * pq + rem;
  }
  return o;
}

template <int MODE>
FW_HD long long fw_a_at(const FwConv& c, const FwIdxRow& r, const FwIdxCol& k) {
  if (!r.ok || !k.ok) return -1;
  if (MODE == 0) {
    const int h = r.h + k.h, w = r.w + k.w;
    if (h < 0 || h >= c.H || w < 0 || w >= c.W) return -1;
    return r.base + ((long long)h * c.W + w) * c.C + k.off;
  } else if (MODE == 1) {
    const int p = r.h + k.h, q = r.w + k.w;
    if (p < 0 || p >= c.P || q < 0 || q >= c.Q) return -1;
    return r.base + ((long long)p * c.Q + q) * c.K + k.off;
  }
  return r.base + k.off;
}

template <int MODE>
FW_HD FwIdxRow fw_b_row(const FwConv& c, int g, int row) {
  FwIdxRow r;
  r.ok = row < c.Ng;
  r.base = 0;
  r.h = r.w = 0;
  if (!r.ok) return r;
  if (MODE == 0) {  // filter row in KRSC
    r.base = (long long)(g * c.Kg + row) * c.Kr;
  } else if (MODE == 1) {  // input channel row of w in "CRSK": every tap; a phase reads some
    r.base = (long long)(g * c.Cg + row) * c.R * c.S * c.Kg;
  } else {  // (ci, r, s) of x (NCHW)
    const int rsz = c.R * c.S;
    const int ci = row / rsz, rs = row - ci * rsz;
    const int rr = rs / c.S, ss = rs - rr * c.S;
    r.base = (long long)(g * c.Cg + ci) * c.H * c.W;
    r.h = rr * c.dh - c.ph;
    r.w = ss * c.dw - c.pw;
  }
  return r;
}

template <int MODE>
FW_HD FwIdxCol fw_b_col(const FwConv& c, int k, int kend) {
  FwIdxCol o;
  o.ok = k < kend;
  o.off = 0;
  o.h = o.w = 0;
  if (!o.ok) return o;
  if (MODE == 0) {
    o.off = k;
  } else if (MODE == 1) {
    const int rs = k / c.Kg, kk = k - rs * c.Kg;
    const int ri = rs / c.sn, si = rs - ri * c.sn;
    const int r = c.r0 + ri * c.rst, s = c.s0 + si * c.sst;
    o.off = (long long)(r * c.S + s) * c.Kg + kk;
  } else {  // k = (n, p, q)
    const int pq = c.P * c.Q;
    const int n = k / pq, rem = k - n * pq;
    const int p = rem / c.Q, q = rem - p * c.Q;
    o.off = (long long)n * c.C * c.H * c.W;
    o.h = p * c.sh;
    o.w = q * c.sw;
  }
  return o;
}

template <int MODE>
FW_HD long long fw_b_at(const FwConv& c, const FwIdxRow& r, const FwIdxCol& k) {
  if (!r.ok || !k.ok) return -1;
  if (MODE == 2) {
    const int h = r.h + k.h, w = r.w + k.w;
    if (h < 0 || h >= c.H || w < 0 || w >= c.W) return -1;
    return r.base + k.off + (long long)h * c.W + w;
  }
  return r.base + k.off;
}

template <int MODE>
FW_HD long long fw_a_offset(const FwConv& c, int g, int row, int k, int kend) {
  return fw_a_at<MODE>(c, fw_a_row<MODE>(c, g, row), fw_a_col<MODE>(c, k, kend));
}

template <int MODE>
FW_HD long long fw_b_offset(const FwConv& c, int g, int row, int k, int kend) {
  return fw_b_at<MODE>(c, fw_b_row<MODE>(c, g, row), fw_b_col<MODE>(c, k, kend));
}

// Where D[row, col] of group g goes (mode 2 with splits > 1 goes to the workspace instead).
template <int MODE>
FW_HD long long fw_out_offset(const FwConv& c, int g, int row, int col) {
  if (MODE == 0) {
    const int pq = c.P * c.Q;
    const int n = row / pq, rem = row - n * pq;
    return ((long long)n * c.K + g * c.Kg + col) * pq + rem;
  } else if (MODE == 1) {
    const int hwq = c.Hq * c.Wq;
    const int n = row / hwq, rem = row - n * hwq;
    const int hq = rem / c.Wq, wq = rem - hq * c.Wq;
    const int h = c.oh + hq * c.sh, w = c.ow + wq * c.sw;
    return (((long long)n * c.C + g * c.Cg + col) * c.H + h) * c.W + w;
  } else {
    return (long long)(g * c.Kg + row) * c.Ng + col;
  }
}

template <typename T, int MODE>
FW_HD void fw_store(const FwConv& c, int g, int split, int splits, int row,
                                         int col, float v, T* __restrict__ out,
                                         float* __restrict__ ws, const T* __restrict__ bias,
                                         const T* __restrict__ residual, int act) {
  if (row >= c.M || col >= c.Ng) return;
  const long long o = fw_out_offset<MODE>(c, g, row, col);
  if (MODE == 2 && splits > 1) {
    ws[(long long)split * c.K * c.Ng + o] = v;
    return;
  }
  if (MODE == 0) {
    if (bias) v += FwType<T>::to_f(bias[g * c.Kg + col]);
    if (residual) v += FwType<T>::to_f(residual[o]);
    v = fw_activate(v, act);
  }
  out[o] = FwType<T>::from_f(v);
}

// ============================================================================ tensor-core path
// BM x BN block tile, BK reduction slice, WARPS_M x WARPS_N warps, STAGES-deep cp.async ring.
// VEC_A / VEC_B: the operand can be fetched as 16-byte runs along Kr (host checks alignment and
// divisibility); otherwise elements are fetched one by one (cp.async 4 B for f32, registers for
// f16, whose 2-byte elements are below cp.async's minimum size).
template <typename T, int MODE, int BM, int BN, int BK, int WARPS_M, int WARPS_N, int STAGES,
          bool VEC_A, bool VEC_B>
__global__ void __launch_bounds__(WARPS_M* WARPS_N * 32)
    fw_conv_mma(const T* __restrict__ asrc, const T* __restrict__ bsrc, T* __restrict__ out,
                float* __restrict__ ws, const T* __restrict__ bias, const T* __restrict__ residual,
                FW_CONV_ARGS, int act, int splits, int k_per_split) {
  constexpr bool F16 = sizeof(T) == 2;
  constexpr int THREADS = WARPS_M * WARPS_N * 32;
  constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N;
  constexpr int MI = WM / 16, NI = WN / 8;
  constexpr int KSTEP = F16 ? 16 : 8;
  constexpr int PAD = F16 ? 8 : 4;  // 16 bytes: rows stay 16-byte aligned, reads conflict-free
  constexpr int LDS = BK + PAD;
  constexpr int VEC = 16 / sizeof(T);
  constexpr int CPR = BK / VEC;  // 16-byte chunks per tile row
  static_assert(MI >= 1 && NI % 2 == 0 && BK % KSTEP == 0, "bad warp tile");
  static_assert(THREADS % CPR == 0 && THREADS % BK == 0, "bad thread count");
  static_assert((BM * CPR) % THREADS == 0 && (BN * CPR) % THREADS == 0, "bad tile");

  extern __shared__ __align__(16) unsigned char fw_smem[];
  T* As = reinterpret_cast<T*>(fw_smem);
  T* Bs = As + STAGES * BM * LDS;
  // Row parts of the element loaders' offsets, one per tile row (the stage buffers end on a
  // 16-byte boundary: LDS * sizeof(T) is a multiple of 16).
  FwIdxRow* srow_a = reinterpret_cast<FwIdxRow*>(Bs + STAGES * BN * LDS);
  FwIdxRow* srow_b = srow_a + BM;

  const FwConv c = fw_make_conv<MODE>(FW_CONV_NAMES);
  const int g = blockIdx.z / splits, split = blockIdx.z - g * splits;
  const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
  const int kbeg = split * k_per_split;
  const int kend = min(c.Kr, kbeg + k_per_split);
  const int ktiles = kend > kbeg ? (kend - kbeg + BK - 1) / BK : 0;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = (warp % WARPS_M) * WM, wn = (warp / WARPS_M) * WN;

  // A thread's column within a tile is fixed and its rows advance by a fixed step, so the row
  // part of each offset is computed here once (vector loaders: kept in registers) and the column
  // part once per k-tile; the element loaders (more rows per thread) recompute it, or read it from
  // a shared-memory table where it costs divisions (TABLE_A / TABLE_B below).
  constexpr int VROWS_A = BM * CPR / THREADS, VROWS_B = BN * CPR / THREADS;
  constexpr int VSTEP = THREADS / CPR, ESTEP = THREADS / BK;
  const int vcc = (threadIdx.x % CPR) * VEC, vrow0 = threadIdx.x / CPR;
  const int ecc = threadIdx.x % BK, erow0 = threadIdx.x / BK;
  FwIdxRow arow[VEC_A ? VROWS_A : 1], brow[VEC_B ? VROWS_B : 1];
  if (VEC_A) {
#pragma unroll
    for (int i = 0; i < VROWS_A; ++i) arow[i] = fw_a_row<MODE>(c, g, m0 + vrow0 + i * VSTEP);
  }
  if (VEC_B) {
#pragma unroll
    for (int i = 0; i < VROWS_B; ++i) brow[i] = fw_b_row<MODE>(c, g, n0 + vrow0 + i * VSTEP);
  }
  // Tables only where a row part costs divisions (A of forward and backward-data, B of
  // backward-filter); the other row parts are one multiply, cheaper than a shared-memory read.
  constexpr bool TABLE_A = !VEC_A && MODE != 2, TABLE_B = !VEC_B && MODE == 2;
  if (TABLE_A)
    for (int i = threadIdx.x; i < BM; i += THREADS) srow_a[i] = fw_a_row<MODE>(c, g, m0 + i);
  if (TABLE_B)
    for (int i = threadIdx.x; i < BN; i += THREADS) srow_b[i] = fw_b_row<MODE>(c, g, n0 + i);
  if (TABLE_A || TABLE_B) __syncthreads();

  auto load_tile = [&](int stage, int k0) {
    T* as = As + stage * BM * LDS;
    T* bs = Bs + stage * BN * LDS;
    if (VEC_A) {
      const FwIdxCol col = fw_a_col<MODE>(c, k0 + vcc, kend);
#pragma unroll
      for (int i = 0; i < VROWS_A; ++i) {
        const int tr = vrow0 + i * VSTEP;
        const long long off = fw_a_at<MODE>(c, arow[i], col);
        fw_cp_async16(fw_smem_addr(as + tr * LDS + vcc), asrc + (off >= 0 ? off : 0), off >= 0);
      }
    } else {
      const FwIdxCol col = fw_a_col<MODE>(c, k0 + ecc, kend);
#pragma unroll 4
      for (int i = 0; i < BM * BK / THREADS; ++i) {
        const int tr = erow0 + i * ESTEP;
        const long long off =
            fw_a_at<MODE>(c, TABLE_A ? srow_a[tr] : fw_a_row<MODE>(c, g, m0 + tr), col);
        if (F16) {
          as[tr * LDS + ecc] = off >= 0 ? asrc[off] : T(0);
        } else {
          fw_cp_async4(fw_smem_addr(as + tr * LDS + ecc), asrc + (off >= 0 ? off : 0), off >= 0);
        }
      }
    }
    if (VEC_B) {
      const FwIdxCol col = fw_b_col<MODE>(c, k0 + vcc, kend);
#pragma unroll
      for (int i = 0; i < VROWS_B; ++i) {
        const int tr = vrow0 + i * VSTEP;
        const long long off = fw_b_at<MODE>(c, brow[i], col);
        fw_cp_async16(fw_smem_addr(bs + tr * LDS + vcc), bsrc + (off >= 0 ? off : 0), off >= 0);
      }
    } else {
      const FwIdxCol col = fw_b_col<MODE>(c, k0 + ecc, kend);
#pragma unroll 4
      for (int i = 0; i < BN * BK / THREADS; ++i) {
        const int tr = erow0 + i * ESTEP;
        const long long off =
            fw_b_at<MODE>(c, TABLE_B ? srow_b[tr] : fw_b_row<MODE>(c, g, n0 + tr), col);
        if (F16) {
          bs[tr * LDS + ecc] = off >= 0 ? bsrc[off] : T(0);
        } else {
          fw_cp_async4(fw_smem_addr(bs + tr * LDS + ecc), bsrc + (off >= 0 ? off : 0), off >= 0);
        }
      }
    }
  };

  float acc[MI][NI][4];
#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int j = 0; j < NI; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.f;

#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < ktiles) load_tile(s, kbeg + s * BK);
    fw_cp_async_commit();
  }

  const int gq = lane >> 2, tq = lane & 3;  // mma fragment coordinates
  for (int kt = 0; kt < ktiles; ++kt) {
    fw_cp_async_wait<STAGES - 2>();
    __syncthreads();  // tile kt landed for everyone; stage (kt-1) % STAGES is free again
    {
      const int nk = kt + STAGES - 1;
      if (nk < ktiles) load_tile(nk % STAGES, kbeg + nk * BK);
      fw_cp_async_commit();
    }
    const T* as = As + (kt % STAGES) * BM * LDS;
    const T* bs = Bs + (kt % STAGES) * BN * LDS;
#pragma unroll
    for (int kk = 0; kk < BK; kk += KSTEP) {
      unsigned af[MI][4], bf[NI][2];
      if (F16) {
#pragma unroll
        for (int i = 0; i < MI; ++i) {
          const T* p = as + (wm + i * 16 + (lane & 15)) * LDS + kk + (lane >> 4) * 8;
          fw_ldmatrix_x4(fw_smem_addr(p), af[i][0], af[i][1], af[i][2], af[i][3]);
        }
#pragma unroll
        for (int j = 0; j < NI; j += 2) {
          const T* p = bs + (wn + j * 8 + (lane & 7) + ((lane >> 4) << 3)) * LDS + kk +
                       ((lane >> 3) & 1) * 8;
          fw_ldmatrix_x4(fw_smem_addr(p), bf[j][0], bf[j][1], bf[j + 1][0], bf[j + 1][1]);
        }
#pragma unroll
        for (int i = 0; i < MI; ++i)
#pragma unroll
          for (int j = 0; j < NI; ++j) fw_mma_f16(acc[i][j], af[i], bf[j]);
      } else {
        const float* fa = reinterpret_cast<const float*>(as);
        const float* fb = reinterpret_cast<const float*>(bs);
#pragma unroll
        for (int i = 0; i < MI; ++i) {
          const float* p = fa + (wm + i * 16 + gq) * LDS + kk + tq;
          af[i][0] = fw_to_tf32(p[0]);
          af[i][1] = fw_to_tf32(p[8 * LDS]);
          af[i][2] = fw_to_tf32(p[4]);
          af[i][3] = fw_to_tf32(p[8 * LDS + 4]);
        }
#pragma unroll
        for (int j = 0; j < NI; ++j) {
          const float* p = fb + (wn + j * 8 + gq) * LDS + kk + tq;
          bf[j][0] = fw_to_tf32(p[0]);
          bf[j][1] = fw_to_tf32(p[4]);
        }
#pragma unroll
        for (int i = 0; i < MI; ++i)
#pragma unroll
          for (int j = 0; j < NI; ++j) fw_mma_tf32(acc[i][j], af[i], bf[j]);
      }
    }
  }
  fw_cp_async_wait<0>();

#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int j = 0; j < NI; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int row = m0 + wm + i * 16 + gq + (e >> 1) * 8;
        const int col = n0 + wn + j * 8 + tq * 2 + (e & 1);
        fw_store<T, MODE>(c, g, split, splits, row, col, acc[i][j][e], out, ws, bias, residual,
                          act);
      }
}

// ============================================================================ exact FFMA path
// BM x BN tile, each thread a TM x TN register block (rows ty*TM.., cols tx*TN..). Operands are
// staged transposed in shared memory as float ([k][row]), so the inner loop reads contiguous
// registers' worth of rows and columns; double-buffered.
template <typename T, int MODE, int BM, int BN, int BK, int TM, int TN>
__global__ void __launch_bounds__((BM / TM) * (BN / TN))
    fw_conv_ffma(const T* __restrict__ asrc, const T* __restrict__ bsrc, T* __restrict__ out,
                 float* __restrict__ ws, const T* __restrict__ bias,
                 const T* __restrict__ residual, FW_CONV_ARGS, int act, int splits,
                 int k_per_split) {
  constexpr int TX = BN / TN, TY = BM / TM, THREADS = TX * TY;
  constexpr int LA = BM + 4, LB = BN + 4;  // padding spreads the transposed stores over banks
  static_assert(THREADS % BK == 0 && (BM * BK) % THREADS == 0 && (BN * BK) % THREADS == 0,
                "bad tile");
  __shared__ __align__(16) float As[2][BK][LA];
  __shared__ __align__(16) float Bs[2][BK][LB];
  __shared__ FwIdxRow srow_a[BM], srow_b[BN];  // row parts of the operand offsets

  const FwConv c = fw_make_conv<MODE>(FW_CONV_NAMES);
  const int g = blockIdx.z / splits, split = blockIdx.z - g * splits;
  const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
  const int kbeg = split * k_per_split;
  const int kend = min(c.Kr, kbeg + k_per_split);
  const int ktiles = kend > kbeg ? (kend - kbeg + BK - 1) / BK : 0;
  const int tid = threadIdx.x, tx = tid % TX, ty = tid / TX;

  // The thread's column kc within a tile is fixed (THREADS % BK == 0): the column part of every
  // offset is computed once per k-tile; the row parts once per block, kept in shared memory.
  for (int i = tid; i < BM; i += THREADS) srow_a[i] = fw_a_row<MODE>(c, g, m0 + i);
  for (int i = tid; i < BN; i += THREADS) srow_b[i] = fw_b_row<MODE>(c, g, n0 + i);
  __syncthreads();
  const int kc = tid % BK, row0 = tid / BK;
  constexpr int STEP = THREADS / BK;
  auto load_tile = [&](int stage, int k0) {
    const FwIdxCol acol = fw_a_col<MODE>(c, k0 + kc, kend);
#pragma unroll
    for (int i = 0; i < BM * BK / THREADS; ++i) {
      const int row = row0 + i * STEP;
      const long long off = fw_a_at<MODE>(c, srow_a[row], acol);
      if (sizeof(T) == 4) {
        fw_cp_async4(fw_smem_addr(&As[stage][kc][row]), asrc + (off >= 0 ? off : 0), off >= 0);
      } else {
        As[stage][kc][row] = off >= 0 ? fw_load_f(asrc + off) : 0.f;
      }
    }
    const FwIdxCol bcol = fw_b_col<MODE>(c, k0 + kc, kend);
#pragma unroll
    for (int i = 0; i < BN * BK / THREADS; ++i) {
      const int row = row0 + i * STEP;
      const long long off = fw_b_at<MODE>(c, srow_b[row], bcol);
      if (sizeof(T) == 4) {
        fw_cp_async4(fw_smem_addr(&Bs[stage][kc][row]), bsrc + (off >= 0 ? off : 0), off >= 0);
      } else {
        Bs[stage][kc][row] = off >= 0 ? fw_load_f(bsrc + off) : 0.f;
      }
    }
  };

  float acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.f;

  if (ktiles > 0) load_tile(0, kbeg);
  fw_cp_async_commit();
  for (int kt = 0; kt < ktiles; ++kt) {
    fw_cp_async_wait<0>();
    __syncthreads();
    if (kt + 1 < ktiles) load_tile((kt + 1) & 1, kbeg + (kt + 1) * BK);
    fw_cp_async_commit();
    const int st = kt & 1;
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      float a[TM], b[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) a[i] = As[st][kk][ty * TM + i];
#pragma unroll
      for (int j = 0; j < TN; ++j) b[j] = Bs[st][kk][tx * TN + j];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
  }
  fw_cp_async_wait<0>();

#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j)
      fw_store<T, MODE>(c, g, split, splits, m0 + ty * TM + i, n0 + tx * TN + j, acc[i][j], out,
                        ws, bias, residual, act);
}

// ============================================================================ split-K reduction
// out[i] = sum over s of ws[s * total + i], s ascending: a fixed order, hence deterministic.
template <typename T>
__global__ void fw_splitk_reduce(const float* __restrict__ ws, T* __restrict__ out, long long total,
                                 int splits) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    float s = 0.f;
    for (int k = 0; k < splits; ++k) s += ws[k * total + i];
    out[i] = FwType<T>::from_f(s);
  }
}

// ============================================================================ layout transforms
// NCHW -> NHWC through a 32x32 shared-memory tile per (image, channel block, pixel block), so
// reads and writes are both coalesced.
template <typename T>
__global__ void fw_nchw_to_nhwc(const T* __restrict__ in, T* __restrict__ out, int C, int HW) {
  __shared__ T tile[32][33];
  const int n = blockIdx.z;
  const int c0 = blockIdx.y * 32, p0 = blockIdx.x * 32;
  const T* src = in + (long long)n * C * HW;
  T* dst = out + (long long)n * C * HW;
  for (int i = threadIdx.y; i < 32; i += blockDim.y) {
    const int cc = c0 + i, pp = p0 + threadIdx.x;
    if (cc < C && pp < HW) tile[i][threadIdx.x] = src[(long long)cc * HW + pp];
  }
  __syncthreads();
  for (int i = threadIdx.y; i < 32; i += blockDim.y) {
    const int pp = p0 + i, cc = c0 + threadIdx.x;
    if (cc < C && pp < HW) dst[(long long)pp * C + cc] = tile[threadIdx.x][i];
  }
}

#ifdef FW_INSTANTIATE_FOR_NVCC_CHECK
// Instantiations compiled by the test suite with nvcc (the runtime instantiates through CuPy
// name expressions instead): each mode, math path and loader kind (16-byte cp.async, 4-byte
// cp.async, register-staged f16) at least once, on small tiles to keep the check fast (the NVRTC
// test compiles every combination to PTX). Define FW_NVCC_CHECK_LARGE_TILES to also build the
// largest tiles (register pressure check).
#define FW_MMA(T, MODE, BM, BN, BK, WM, WN, ST, VA, VB) \
  template __global__ void fw_conv_mma<T, MODE, BM, BN, BK, WM, WN, ST, VA, VB>(     \
      const T*, const T*, T*, float*, const T*, const T*, int, int, int, int, int, int, int, int, \
      int, int, int, int, int, int, int, int, int, int, int, int, int, int, int, int, int, int, \
      int, int, int);
#define FW_FFMA(T, MODE, BM, BN, BK, TM, TN) \
  template __global__ void fw_conv_ffma<T, MODE, BM, BN, BK, TM, TN>(                \
      const T*, const T*, T*, float*, const T*, const T*, int, int, int, int, int, int, int, int, \
      int, int, int, int, int, int, int, int, int, int, int, int, int, int, int, int, int, int, \
      int, int, int);
FW_MMA(fw_half, 0, 64, 64, 32, 2, 2, 4, true, true)
FW_MMA(fw_half, 2, 64, 32, 32, 2, 2, 3, true, false)
FW_MMA(float, 1, 64, 64, 16, 2, 2, 4, true, false)
FW_MMA(float, 2, 64, 32, 16, 2, 2, 4, false, false)
FW_FFMA(float, 0, 32, 64, 8, 4, 4)
FW_FFMA(fw_half, 1, 64, 64, 8, 4, 4)
#ifdef FW_NVCC_CHECK_LARGE_TILES
FW_MMA(fw_half, 0, 256, 128, 32, 4, 2, 3, true, true)
FW_MMA(fw_half, 0, 128, 128, 32, 2, 2, 3, true, true)
FW_MMA(float, 0, 128, 128, 16, 2, 2, 4, true, true)
FW_FFMA(float, 0, 128, 64, 8, 8, 4)
#endif
template __global__ void fw_splitk_reduce<float>(const float*, float*, long long, int);
template __global__ void fw_splitk_reduce<fw_half>(const float*, fw_half*, long long, int);
template __global__ void fw_nchw_to_nhwc<float>(const float*, float*, int, int);
template __global__ void fw_nchw_to_nhwc<fw_half>(const fw_half*, fw_half*, int, int);
#endif
