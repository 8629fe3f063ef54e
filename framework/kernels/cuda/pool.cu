// 2-D max and average pooling, forward and backward, NCHW, PyTorch's semantics:
// - max: NaN propagates (the first NaN in window order wins, like the framework's CPU kernel), ties
//   keep the first tap; `argpos` holds the winning tap r*kw + s (int16), the same convention as
//   framework/kernels/cpu/pool.py, so either back end's backward accepts it;
// - avg: windows clipped to the padded extent [-pad, H+pad); the divisor is the clipped window
//   (count_include_pad) or the in-image part only, or `divisor` when it is > 0.
// Output sizes (ceil_mode included) are computed on the host. Backward passes gather from the
// outputs whose window holds each input, so there are no atomics and results are deterministic.
// The per-element bodies are host+device (FW_HD) so the test suite runs them on the CPU too.
#include "common.cuh"

#define FW_POOL_GEOM int NC, int H, int W, int P, int Q, int kh, int kw, int sh, int sw, int ph, int pw

template <typename T>
FW_HD void fw_maxpool_fwd_one(long long i, const T* x, T* y, short* argpos, FW_POOL_GEOM, int dh,
                              int dw) {
  const int q = (int)(i % Q);
  const long long t = i / Q;
  const int p = (int)(t % P);
  const long long plane = t / P;
  const T* xp = x + plane * H * W;
  float best = 0.f;
  int arg = -1;
  for (int r = 0; r < kh; ++r) {
    const int h = p * sh - ph + r * dh;
    if (h < 0 || h >= H) continue;
    for (int s = 0; s < kw; ++s) {
      const int w = q * sw - pw + s * dw;
      if (w < 0 || w >= W) continue;
      const float v = fw_load_f(xp + (long long)h * W + w);
      if (arg < 0 || v > best || (v != v && best == best)) {
        best = v;
        arg = r * kw + s;
      }
    }
  }
  y[i] = FwType<T>::from_f(best);
  argpos[i] = (short)(arg < 0 ? 0 : arg);
}

template <typename T>
FW_HD void fw_maxpool_bwd_one(long long i, const T* gy, const short* argpos, T* gx, FW_POOL_GEOM,
                              int dh, int dw) {
  const int w = (int)(i % W);
  const long long t = i / W;
  const int h = (int)(t % H);
  const long long plane = t / H;
  float acc = 0.f;
  // Outputs p whose window [p*sh - ph, p*sh - ph + (kh-1)*dh] can hold h. The ceiling division
  // truncates toward zero for negative numerators, which only matters below 0, where we clamp.
  const int plo = fw_imax(0, (h + ph - (kh - 1) * dh + sh - 1) / sh);
  const int phi = fw_imin(P - 1, (h + ph) / sh);
  const int qlo = fw_imax(0, (w + pw - (kw - 1) * dw + sw - 1) / sw);
  const int qhi = fw_imin(Q - 1, (w + pw) / sw);
  for (int p = plo; p <= phi; ++p)
    for (int q = qlo; q <= qhi; ++q) {
      const long long o = (plane * P + p) * Q + q;
      const int tap = argpos[o], r = tap / kw, s = tap - r * kw;
      if (p * sh - ph + r * dh == h && q * sw - pw + s * dw == w) acc += fw_load_f(gy + o);
    }
  gx[i] = FwType<T>::from_f(acc);
}

FW_HD int fw_avg_divisor(int p, int q, int H, int W, int kh, int kw, int sh, int sw, int ph,
                         int pw, int count_include_pad, int divisor) {
  if (divisor > 0) return divisor;
  int h0 = p * sh - ph, w0 = q * sw - pw;
  int h1 = fw_imin(h0 + kh, H + ph), w1 = fw_imin(w0 + kw, W + pw);
  if (count_include_pad) return (h1 - h0) * (w1 - w0);
  h0 = fw_imax(h0, 0);
  w0 = fw_imax(w0, 0);
  h1 = fw_imin(h1, H);
  w1 = fw_imin(w1, W);
  return (h1 - h0) * (w1 - w0);
}

template <typename T>
FW_HD void fw_avgpool_fwd_one(long long i, const T* x, T* y, FW_POOL_GEOM, int count_include_pad,
                              int divisor) {
  const int q = (int)(i % Q);
  const long long t = i / Q;
  const int p = (int)(t % P);
  const long long plane = t / P;
  const T* xp = x + plane * H * W;
  const int h0 = fw_imax(p * sh - ph, 0), h1 = fw_imin(p * sh - ph + kh, H);
  const int w0 = fw_imax(q * sw - pw, 0), w1 = fw_imin(q * sw - pw + kw, W);
  float acc = 0.f;
  for (int h = h0; h < h1; ++h)
    for (int w = w0; w < w1; ++w) acc += fw_load_f(xp + (long long)h * W + w);
  const int d = fw_avg_divisor(p, q, H, W, kh, kw, sh, sw, ph, pw, count_include_pad, divisor);
  y[i] = FwType<T>::from_f(acc / (float)d);
}

template <typename T>
FW_HD void fw_avgpool_bwd_one(long long i, const T* gy, T* gx, FW_POOL_GEOM, int count_include_pad,
                              int divisor) {
  const int w = (int)(i % W);
  const long long t = i / W;
  const int h = (int)(t % H);
  const long long plane = t / H;
  const int plo = fw_imax(0, (h + ph - kh + 1 + sh - 1) / sh);  // p*sh - ph + kh - 1 >= h
  const int phi = fw_imin(P - 1, (h + ph) / sh);
  const int qlo = fw_imax(0, (w + pw - kw + 1 + sw - 1) / sw);
  const int qhi = fw_imin(Q - 1, (w + pw) / sw);
  float acc = 0.f;
  for (int p = plo; p <= phi; ++p)
    for (int q = qlo; q <= qhi; ++q) {
      const int d = fw_avg_divisor(p, q, H, W, kh, kw, sh, sw, ph, pw, count_include_pad, divisor);
      acc += fw_load_f(gy + (plane * P + p) * Q + q) / (float)d;
    }
  gx[i] = FwType<T>::from_f(acc);
}

#define FW_GRID_STRIDE(total)                                                      \
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (total); \
       i += (long long)gridDim.x * blockDim.x)

template <typename T>
__global__ void fw_maxpool2d_forward(const T* __restrict__ x, T* __restrict__ y,
                                     short* __restrict__ argpos, FW_POOL_GEOM, int dh, int dw) {
  FW_GRID_STRIDE((long long)NC * P * Q)
  fw_maxpool_fwd_one(i, x, y, argpos, NC, H, W, P, Q, kh, kw, sh, sw, ph, pw, dh, dw);
}

template <typename T>
__global__ void fw_maxpool2d_backward(const T* __restrict__ gy, const short* __restrict__ argpos,
                                      T* __restrict__ gx, FW_POOL_GEOM, int dh, int dw) {
  FW_GRID_STRIDE((long long)NC * H * W)
  fw_maxpool_bwd_one(i, gy, argpos, gx, NC, H, W, P, Q, kh, kw, sh, sw, ph, pw, dh, dw);
}

template <typename T>
__global__ void fw_avgpool2d_forward(const T* __restrict__ x, T* __restrict__ y, FW_POOL_GEOM,
                                     int count_include_pad, int divisor) {
  FW_GRID_STRIDE((long long)NC * P * Q)
  fw_avgpool_fwd_one(i, x, y, NC, H, W, P, Q, kh, kw, sh, sw, ph, pw, count_include_pad, divisor);
}

template <typename T>
__global__ void fw_avgpool2d_backward(const T* __restrict__ gy, T* __restrict__ gx, FW_POOL_GEOM,
                                      int count_include_pad, int divisor) {
  FW_GRID_STRIDE((long long)NC * H * W)
  fw_avgpool_bwd_one(i, gy, gx, NC, H, W, P, Q, kh, kw, sh, sw, ph, pw, count_include_pad, divisor);
}

#ifdef FW_INSTANTIATE_FOR_NVCC_CHECK
#define FW_POOL(T)                                                                                \
  template __global__ void fw_maxpool2d_forward<T>(const T*, T*, short*, int, int, int, int, int, \
                                                   int, int, int, int, int, int, int, int);       \
  template __global__ void fw_maxpool2d_backward<T>(const T*, const short*, T*, int, int, int,    \
                                                    int, int, int, int, int, int, int, int, int,  \
                                                    int);                                          \
  template __global__ void fw_avgpool2d_forward<T>(const T*, T*, int, int, int, int, int, int, int, \
                                                   int, int, int, int, int, int);                 \
  template __global__ void fw_avgpool2d_backward<T>(const T*, T*, int, int, int, int, int, int,   \
                                                    int, int, int, int, int, int, int);
FW_POOL(float)
FW_POOL(fw_half)
#endif
