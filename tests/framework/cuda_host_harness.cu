// Host harness for tests/framework/test_cuda_host.py: runs, on the CPU, the host+device (FW_HD)
// parts of the framework's CUDA kernels -- the implicit-GEMM operand gathers (fw_a_offset,
// fw_b_offset, including the 16-byte run loaders' assumption that a run is contiguous), the
// split-K partition and its ordered reduction, the epilogue (fw_store), and the per-element bodies
// of the pooling and depthwise kernels -- so their index arithmetic is checked against PyTorch on a
// machine without a GPU. What it cannot check: the mma.sync/ldmatrix fragment mapping, cp.async
// pipelining, shared-memory tiling and the block reductions, which need a GPU.
//
// Usage: harness OP INTS... -- IN_FILES... OUT_FILE ; arrays are raw little-endian float32
// (argpos: int16) files; "-" stands for a null pointer.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "conv_igemm.cu"
#include "depthwise.cu"
#include "pool.cu"

template <typename T> static std::vector<T> read_file(const char* path) {
  std::vector<T> v;
  if (std::strcmp(path, "-") == 0) return v;
  FILE* f = std::fopen(path, "rb");
  if (!f) { std::fprintf(stderr, "cannot open %s\n", path); std::exit(2); }
  std::fseek(f, 0, SEEK_END);
  long n = std::ftell(f);
  std::fseek(f, 0, SEEK_SET);
  v.resize(n / sizeof(T));
  if (n && std::fread(v.data(), 1, n, f) != (size_t)n) std::exit(3);
  std::fclose(f);
  return v;
}

template <typename T> static void write_file(const char* path, const std::vector<T>& v) {
  FILE* f = std::fopen(path, "wb");
  if (!f) std::exit(4);
  std::fwrite(v.data(), sizeof(T), v.size(), f);
  std::fclose(f);
}

template <typename T> static const T* ptr(const std::vector<T>& v) {
  return v.empty() ? nullptr : v.data();
}

// Element (row, k) of A or B as the kernel loaders see it: with `vec`, the 4-float run starting at
// the aligned k is located by one offset call and read contiguously (what cp.async 16 B does).
template <int MODE, bool IS_A>
static float gather(const FwConv& c, int g, int row, int k, int kend, bool vec, const float* src) {
  const int kc = vec ? k - (k % 4) : k;
  const long long off = IS_A ? fw_a_offset<MODE>(c, g, row, kc, kend)
                             : fw_b_offset<MODE>(c, g, row, kc, kend);
  if (off < 0) return 0.f;
  return src[off + (k - kc)];
}

// ints: vec_a vec_b splits k_per_split act, the 16 geometry ints, nphases, then 10 ints per phase
// (see FW_CONV_ARGS). Every phase writes into the same output, as the GPU launches do.
template <int MODE>
static void run_conv(const int* a, char** files) {
  const bool va = a[0], vb = a[1];
  const int splits = a[2], kps_arg = a[3], act = a[4];
  const int* g16 = a + 5;  // N C H W K R S P Q sh sw ph pw dh dw groups
  const int nph = a[21];
  std::vector<float> A = read_file<float>(files[0]), B = read_file<float>(files[1]);
  std::vector<float> bias = read_file<float>(files[2]), res = read_file<float>(files[3]);
  const FwConv c0 = fw_make_conv<0>(g16[0], g16[1], g16[2], g16[3], g16[4], g16[5], g16[6], g16[7],
                                    g16[8], g16[9], g16[10], g16[11], g16[12], g16[13], g16[14],
                                    g16[15], 0, 0, 0, 1, g16[5], 0, 1, g16[6], g16[2], g16[3]);
  long long out_size = MODE == 0   ? (long long)c0.N * c0.K * c0.P * c0.Q
                       : MODE == 1 ? (long long)c0.N * c0.C * c0.H * c0.W
                                   : (long long)c0.K * c0.Cg * c0.R * c0.S;
  std::vector<float> out(out_size, __builtin_nanf(""));
  for (int ph = 0; ph < nph; ++ph) {
    const int* q = a + 22 + 10 * ph;
    const FwConv c = fw_make_conv<MODE>(g16[0], g16[1], g16[2], g16[3], g16[4], g16[5], g16[6],
                                        g16[7], g16[8], g16[9], g16[10], g16[11], g16[12], g16[13],
                                        g16[14], g16[15], q[0], q[1], q[2], q[3], q[4], q[5], q[6],
                                        q[7], q[8], q[9]);
    const int kps = kps_arg > 0 ? kps_arg : (c.Kr > 0 ? c.Kr : 1);
    std::vector<float> ws;
    if (splits > 1) ws.assign((size_t)splits * c.K * c.Ng, __builtin_nanf(""));
    for (int g = 0; g < c.groups; ++g)
      for (int sp = 0; sp < splits; ++sp) {
        const int kbeg = sp * kps, kend = kbeg + kps < c.Kr ? kbeg + kps : c.Kr;
        for (int row = 0; row < c.M; ++row)
          for (int col = 0; col < c.Ng; ++col) {
            float acc = 0.f;
            for (int k = kbeg; k < kend; ++k)
              acc = fmaf(gather<MODE, true>(c, g, row, k, kend, va, A.data()),
                         gather<MODE, false>(c, g, col, k, kend, vb, B.data()), acc);
            fw_store<float, MODE>(c, g, sp, splits, row, col, acc, out.data(), ws.data(),
                                  ptr(bias), ptr(res), act);
          }
      }
    if (splits > 1)  // fw_splitk_reduce's order
      for (long long i = 0; i < out_size; ++i) {
        float s = 0.f;
        for (int k = 0; k < splits; ++k) s += ws[k * out_size + i];
        out[i] = s;
      }
  }
  write_file(files[4], out);
}

int main(int argc, char** argv) {
  if (argc < 3) return 1;
  std::string op = argv[1];
  std::vector<int> a;
  int i = 2;
  for (; i < argc && std::strcmp(argv[i], "--") != 0; ++i) a.push_back(std::atoi(argv[i]));
  char** files = argv + i + 1;
  if (op == "conv0") run_conv<0>(a.data(), files);
  else if (op == "conv1") run_conv<1>(a.data(), files);
  else if (op == "conv2") run_conv<2>(a.data(), files);
  else if (op == "maxpool_fwd" || op == "avgpool_fwd" || op == "maxpool_bwd" || op == "avgpool_bwd") {
    // ints: NC H W P Q kh kw sh sw ph pw dh dw count_include_pad divisor
    const int NC = a[0], H = a[1], W = a[2], P = a[3], Q = a[4];
    if (op == "maxpool_fwd") {
      std::vector<float> x = read_file<float>(files[0]), y((size_t)NC * P * Q, __builtin_nanf(""));
      std::vector<short> arg((size_t)NC * P * Q, -1);
      for (long long e = 0; e < (long long)y.size(); ++e)
        fw_maxpool_fwd_one(e, x.data(), y.data(), arg.data(), NC, H, W, P, Q, a[5], a[6], a[7], a[8],
                           a[9], a[10], a[11], a[12]);
      write_file(files[1], y);
      write_file(files[2], arg);
    } else if (op == "maxpool_bwd") {
      std::vector<float> gy = read_file<float>(files[0]), gx((size_t)NC * H * W, __builtin_nanf(""));
      std::vector<short> arg = read_file<short>(files[1]);
      for (long long e = 0; e < (long long)gx.size(); ++e)
        fw_maxpool_bwd_one(e, gy.data(), arg.data(), gx.data(), NC, H, W, P, Q, a[5], a[6], a[7],
                           a[8], a[9], a[10], a[11], a[12]);
      write_file(files[2], gx);
    } else if (op == "avgpool_fwd") {
      std::vector<float> x = read_file<float>(files[0]), y((size_t)NC * P * Q, __builtin_nanf(""));
      for (long long e = 0; e < (long long)y.size(); ++e)
        fw_avgpool_fwd_one(e, x.data(), y.data(), NC, H, W, P, Q, a[5], a[6], a[7], a[8], a[9],
                           a[10], a[13], a[14]);
      write_file(files[1], y);
    } else {
      std::vector<float> gy = read_file<float>(files[0]), gx((size_t)NC * H * W, __builtin_nanf(""));
      for (long long e = 0; e < (long long)gx.size(); ++e)
        fw_avgpool_bwd_one(e, gy.data(), gx.data(), NC, H, W, P, Q, a[5], a[6], a[7], a[8], a[9],
                           a[10], a[13], a[14]);
      write_file(files[1], gx);
    }
  } else if (op == "dw_fwd" || op == "dw_bwd_data" || op == "dw_bwd_filter") {
    // ints: N C H W K R S P Q sh sw ph pw dh dw act
    const int N = a[0], C = a[1], H = a[2], W = a[3], K = a[4], R = a[5], S = a[6], P = a[7],
              Q = a[8];
#define G16 N, C, H, W, K, R, S, P, Q, a[9], a[10], a[11], a[12], a[13], a[14]
    if (op == "dw_fwd") {
      std::vector<float> x = read_file<float>(files[0]), w = read_file<float>(files[1]);
      std::vector<float> bias = read_file<float>(files[2]), res = read_file<float>(files[3]);
      std::vector<float> y((size_t)N * K * P * Q, __builtin_nanf(""));
      for (long long e = 0; e < (long long)y.size(); ++e)
        fw_dw_forward_one(e, x.data(), w.data(), ptr(bias), ptr(res), y.data(), G16, a[15]);
      write_file(files[4], y);
    } else if (op == "dw_bwd_data") {
      std::vector<float> gy = read_file<float>(files[0]), w = read_file<float>(files[1]);
      std::vector<float> gx((size_t)N * C * H * W, __builtin_nanf(""));
      for (long long e = 0; e < (long long)gx.size(); ++e)
        fw_dw_backward_data_one(e, gy.data(), w.data(), gx.data(), G16);
      write_file(files[2], gx);
    } else {
      std::vector<float> x = read_file<float>(files[0]), gy = read_file<float>(files[1]);
      std::vector<float> gw((size_t)K * R * S, __builtin_nanf(""));
      for (int k = 0; k < K; ++k)
        for (int r = 0; r < R; ++r)
          for (int s = 0; s < S; ++s) {
            float acc = 0.f;
            for (long long e = 0; e < (long long)N * P * Q; ++e)
              acc += fw_dw_filter_term(e, k, r, s, x.data(), gy.data(), G16);
            gw[((size_t)k * R + r) * S + s] = acc;
          }
      write_file(files[2], gw);
    }
  } else {
    return 1;
  }
  return 0;
}
