// Batch normalisation over (N, H, W) per channel of an NCHW tensor, with fused statistics.
//
// Forward (training):
//   fw_bn_partial   grid (C, splits): each block sums (x - shift) and (x - shift)^2 over its share
//                   of the channel in float32 (shift = the channel's first element, which keeps
//                   the one-pass variance accurate when |mean| >> std) -> ws[c][split][2]
//   fw_bn_finalize  one thread per channel adds the splits in order -> mean, biased var, invstd
//   fw_bn_apply     y = act((x - mean) * invstd * weight + bias), also used in eval mode
// Backward:
//   fw_bn_bwd_partial / fw_bn_bwd_finalize: sum(dy) and sum(dy * xhat) per channel, same scheme
//   fw_bn_bwd_apply  dx = weight * invstd * (dy - sum_dy / M - xhat * sum_dy_xhat / M)   (training)
//                    dx = weight * invstd * dy                                           (eval)
// Every reduction has a fixed order (per-thread strided loop, then fw_block_sum, then splits in
// index order), so results are reproducible bit for bit. Statistics are float32 even for f16 data.
#include "common.cuh"

template <typename T>
__global__ void fw_bn_partial(const T* __restrict__ x, float* __restrict__ ws, int N, int C,
                              int HW, int splits) {
  __shared__ float buf[32];
  const int c = blockIdx.x, sp = blockIdx.y;
  const long long M = (long long)N * HW;
  const long long per = (M + splits - 1) / splits;
  const long long lo = sp * per, hi = min(M, lo + per);
  const float shift = fw_load_f(x + (long long)c * HW);
  float s1 = 0.f, s2 = 0.f;
  for (long long i = lo + threadIdx.x; i < hi; i += blockDim.x) {
    const long long n = i / HW, r = i - n * HW;
    const float v = fw_load_f(x + (n * C + c) * HW + r) - shift;
    s1 += v;
    s2 = fmaf(v, v, s2);
  }
  s1 = fw_block_sum(s1, buf);
  s2 = fw_block_sum(s2, buf);
  if (threadIdx.x == 0) {
    ws[((long long)c * splits + sp) * 2] = s1;
    ws[((long long)c * splits + sp) * 2 + 1] = s2;
  }
}

template <typename T>
__global__ void fw_bn_finalize(const T* __restrict__ x, const float* __restrict__ ws,
                               float* __restrict__ mean, float* __restrict__ var,
                               float* __restrict__ invstd, int N, int C, int HW, int splits,
                               float eps) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  double s1 = 0.0, s2 = 0.0;  // the few partials are combined in double: cheap and exact enough
  for (int sp = 0; sp < splits; ++sp) {
    s1 += ws[((long long)c * splits + sp) * 2];
    s2 += ws[((long long)c * splits + sp) * 2 + 1];
  }
  const double M = (double)N * HW;
  const double m = s1 / M;
  double v = s2 / M - m * m;
  if (v < 0.0) v = 0.0;
  const float shift = fw_load_f(x + (long long)c * HW);
  mean[c] = (float)(m + shift);
  var[c] = (float)v;
  invstd[c] = (float)(1.0 / sqrt(v + (double)eps));
}

template <typename T>
__global__ void fw_bn_apply(const T* __restrict__ x, const float* __restrict__ mean,
                            const float* __restrict__ invstd, const T* __restrict__ weight,
                            const T* __restrict__ bias, T* __restrict__ y, long long total, int C,
                            int HW, int act) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    const int c = (int)((i / HW) % C);
    float v = (fw_load_f(x + i) - mean[c]) * invstd[c];
    if (weight) v *= fw_load_f(weight + c);
    if (bias) v += fw_load_f(bias + c);
    y[i] = FwType<T>::from_f(fw_activate(v, act));
  }
}

template <typename T>
__global__ void fw_bn_bwd_partial(const T* __restrict__ gy, const T* __restrict__ x,
                                  const float* __restrict__ mean, const float* __restrict__ invstd,
                                  float* __restrict__ ws, int N, int C, int HW, int splits) {
  __shared__ float buf[32];
  const int c = blockIdx.x, sp = blockIdx.y;
  const long long M = (long long)N * HW;
  const long long per = (M + splits - 1) / splits;
  const long long lo = sp * per, hi = min(M, lo + per);
  const float mu = mean[c], is = invstd[c];
  float s1 = 0.f, s2 = 0.f;
  for (long long i = lo + threadIdx.x; i < hi; i += blockDim.x) {
    const long long n = i / HW, r = i - n * HW;
    const long long o = (n * C + c) * HW + r;
    const float g = fw_load_f(gy + o);
    s1 += g;
    s2 = fmaf(g, (fw_load_f(x + o) - mu) * is, s2);
  }
  s1 = fw_block_sum(s1, buf);
  s2 = fw_block_sum(s2, buf);
  if (threadIdx.x == 0) {
    ws[((long long)c * splits + sp) * 2] = s1;
    ws[((long long)c * splits + sp) * 2 + 1] = s2;
  }
}

// Produces sum(dy) (the bias gradient) and sum(dy * xhat) (the weight gradient) per channel.
__global__ void fw_bn_bwd_finalize(const float* __restrict__ ws, float* __restrict__ sum_dy,
                                   float* __restrict__ sum_dy_xhat, int C, int splits) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float s1 = 0.f, s2 = 0.f;
  for (int sp = 0; sp < splits; ++sp) {
    s1 += ws[((long long)c * splits + sp) * 2];
    s2 += ws[((long long)c * splits + sp) * 2 + 1];
  }
  sum_dy[c] = s1;
  sum_dy_xhat[c] = s2;
}

template <typename T>
__global__ void fw_bn_bwd_apply(const T* __restrict__ gy, const T* __restrict__ x,
                                const float* __restrict__ mean, const float* __restrict__ invstd,
                                const T* __restrict__ weight, const float* __restrict__ sum_dy,
                                const float* __restrict__ sum_dy_xhat, T* __restrict__ gx,
                                long long total, int C, int HW, float inv_m, int training) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    const int c = (int)((i / HW) % C);
    const float scale = invstd[c] * (weight ? fw_load_f(weight + c) : 1.f);
    float g = fw_load_f(gy + i);
    if (training) {
      const float xhat = (fw_load_f(x + i) - mean[c]) * invstd[c];
      g = g - sum_dy[c] * inv_m - xhat * sum_dy_xhat[c] * inv_m;
    }
    gx[i] = FwType<T>::from_f(g * scale);
  }
}

#ifdef FW_INSTANTIATE_FOR_NVCC_CHECK
#define FW_BN(T)                                                                                  \
  template __global__ void fw_bn_partial<T>(const T*, float*, int, int, int, int);               \
  template __global__ void fw_bn_finalize<T>(const T*, const float*, float*, float*, float*, int, \
                                             int, int, int, float);                               \
  template __global__ void fw_bn_apply<T>(const T*, const float*, const float*, const T*,        \
                                          const T*, T*, long long, int, int, int);                \
  template __global__ void fw_bn_bwd_partial<T>(const T*, const T*, const float*, const float*,  \
                                                float*, int, int, int, int);                      \
  template __global__ void fw_bn_bwd_apply<T>(const T*, const T*, const float*, const float*,    \
                                              const T*, const float*, const float*, T*, long long, \
                                              int, int, float, int);
FW_BN(float)
FW_BN(fw_half)
#endif
