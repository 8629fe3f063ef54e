// Depthwise 2-D convolution (groups == C, K = C * multiplier), NCHW, direct (not GEMM: each output
// reads only R*S inputs, so the work is memory-bound and a GEMM would waste its tiles).
//
//   fw_dw_forward         one thread per output (n, k, p, q), q fastest (coalesced), float
//                         accumulator; epilogue y = act(acc + bias[k] + residual) as in conv_igemm.
//   fw_dw_backward_data   one thread per input (n, c, h, w): gathers the outputs that read it, so
//                         no atomics are needed.
//   fw_dw_backward_filter one block per (k, r, s): a fixed-order block reduction over N*P*Q
//                         (deterministic).
// The per-element bodies are host+device (FW_HD) so the test suite runs them on the CPU too.
#include "common.cuh"

#define FW_DW_GEOM                                                                           \
  int N, int C, int H, int W, int K, int R, int S, int P, int Q, int sh, int sw, int ph, int pw, \
      int dh, int dw

template <typename T>
FW_HD void fw_dw_forward_one(long long i, const T* x, const T* w, const T* bias, const T* residual,
                             T* y, FW_DW_GEOM, int act) {
  const int mult = K / C;
  const int q = (int)(i % Q);
  long long t = i / Q;
  const int p = (int)(t % P);
  t /= P;
  const int k = (int)(t % K);
  const int n = (int)(t / K);
  const int c = k / mult;
  const T* xp = x + ((long long)n * C + c) * H * W;
  const T* wp = w + (long long)k * R * S;
  float acc = 0.f;
  for (int r = 0; r < R; ++r) {
    const int h = p * sh - ph + r * dh;
    if (h < 0 || h >= H) continue;
    for (int s = 0; s < S; ++s) {
      const int ww = q * sw - pw + s * dw;
      if (ww < 0 || ww >= W) continue;
      acc = fmaf(fw_load_f(xp + (long long)h * W + ww), fw_load_f(wp + r * S + s), acc);
    }
  }
  if (bias) acc += fw_load_f(bias + k);
  if (residual) acc += fw_load_f(residual + i);
  y[i] = FwType<T>::from_f(fw_activate(acc, act));
}

template <typename T>
FW_HD void fw_dw_backward_data_one(long long i, const T* gy, const T* w, T* gx, FW_DW_GEOM) {
  const int mult = K / C;
  const int ww = (int)(i % W);
  long long t = i / W;
  const int h = (int)(t % H);
  t /= H;
  const int c = (int)(t % C);
  const int n = (int)(t / C);
  float acc = 0.f;
  for (int m = 0; m < mult; ++m) {
    const int k = c * mult + m;
    const T* gp = gy + ((long long)n * K + k) * P * Q;
    const T* wp = w + (long long)k * R * S;
    for (int r = 0; r < R; ++r) {
      const int tp = h + ph - r * dh;
      if (tp < 0) continue;
      const int p = tp / sh;
      if (p * sh != tp || p >= P) continue;
      for (int s = 0; s < S; ++s) {
        const int tq = ww + pw - s * dw;
        if (tq < 0) continue;
        const int q = tq / sw;
        if (q * sw != tq || q >= Q) continue;
        acc = fmaf(fw_load_f(gp + (long long)p * Q + q), fw_load_f(wp + r * S + s), acc);
      }
    }
  }
  gx[i] = FwType<T>::from_f(acc);
}

// Term i (over N*P*Q) of dL/dw[k, 0, r, s].
template <typename T>
FW_HD float fw_dw_filter_term(long long i, int k, int r, int s, const T* x, const T* gy,
                              FW_DW_GEOM) {
  const int c = k / (K / C);
  const int pq = P * Q;
  const int n = (int)(i / pq), rem = (int)(i - (long long)n * pq);
  const int p = rem / Q, q = rem - p * Q;
  const int h = p * sh - ph + r * dh, ww = q * sw - pw + s * dw;
  if (h < 0 || h >= H || ww < 0 || ww >= W) return 0.f;
  return fw_load_f(gy + ((long long)n * K + k) * pq + rem) *
         fw_load_f(x + (((long long)n * C + c) * H + h) * W + ww);
}

#define FW_DW_ARGS N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw, dh, dw

template <typename T>
__global__ void fw_dw_forward(const T* __restrict__ x, const T* __restrict__ w,
                              const T* __restrict__ bias, const T* __restrict__ residual,
                              T* __restrict__ y, FW_DW_GEOM, int act) {
  const long long total = (long long)N * K * P * Q;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x)
    fw_dw_forward_one(i, x, w, bias, residual, y, FW_DW_ARGS, act);
}

template <typename T>
__global__ void fw_dw_backward_data(const T* __restrict__ gy, const T* __restrict__ w,
                                    T* __restrict__ gx, FW_DW_GEOM) {
  const long long total = (long long)N * C * H * W;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x)
    fw_dw_backward_data_one(i, gy, w, gx, FW_DW_ARGS);
}

template <typename T>
__global__ void fw_dw_backward_filter(const T* __restrict__ x, const T* __restrict__ gy,
                                      T* __restrict__ gw, FW_DW_GEOM) {
  __shared__ float buf[32];
  const int rs = blockIdx.x % (R * S), k = blockIdx.x / (R * S);
  const int r = rs / S, s = rs - r * S;
  const long long total = (long long)N * P * Q;
  float acc = 0.f;
  for (long long i = threadIdx.x; i < total; i += blockDim.x)
    acc += fw_dw_filter_term(i, k, r, s, x, gy, FW_DW_ARGS);
  acc = fw_block_sum(acc, buf);
  if (threadIdx.x == 0) gw[blockIdx.x] = FwType<T>::from_f(acc);
}

#ifdef FW_INSTANTIATE_FOR_NVCC_CHECK
#define FW_DW(T)                                                                                 \
  template __global__ void fw_dw_forward<T>(const T*, const T*, const T*, const T*, T*, int, int, \
                                            int, int, int, int, int, int, int, int, int, int, int, \
                                            int, int, int);                                       \
  template __global__ void fw_dw_backward_data<T>(const T*, const T*, T*, int, int, int, int, int, \
                                                  int, int, int, int, int, int, int, int, int,    \
                                                  int);                                           \
  template __global__ void fw_dw_backward_filter<T>(const T*, const T*, T*, int, int, int, int,  \
                                                    int, int, int, int, int, int, int, int, int,  \
                                                    int, int);
FW_DW(float)
FW_DW(fw_half)
#endif
