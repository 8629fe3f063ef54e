// Shared helpers for the framework's CUDA kernels: half <-> float without cuda_fp16.h (so the
// same source compiles under NVRTC without include paths), inline-PTX wrappers for cp.async,
// ldmatrix and mma.sync (sm_80+), and a deterministic block reduction.
//
// Every helper that needs sm_80 compiles to a trap on older architectures, so the files still
// build for any -arch; the Python side only selects those kernels on compute capability >= 8.0.
#pragma once

typedef unsigned short fw_half;  // IEEE binary16 bits; arithmetic always happens in float

// Index arithmetic and per-element bodies are host+device, so a host program (the test suite's
// harness, built with nvcc and run on the CPU) can execute the very same code on small problems.
#define FW_HD __host__ __device__ __forceinline__

#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ >= 800)
#define FW_SM80 1
#else
#define FW_SM80 0
#endif

__device__ __forceinline__ float fw_h2f(fw_half h) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
}

__device__ __forceinline__ fw_half fw_f2h(float f) {
  fw_half h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
  return h;
}

template <typename T> struct FwType;
template <> struct FwType<float> {
  static FW_HD float to_f(float v) { return v; }
  static FW_HD float from_f(float v) { return v; }
};
template <> struct FwType<fw_half> {
  static __device__ __forceinline__ float to_f(fw_half v) { return fw_h2f(v); }
  static __device__ __forceinline__ fw_half from_f(float v) { return fw_f2h(v); }
};

FW_HD int fw_imin(int a, int b) { return a < b ? a : b; }
FW_HD int fw_imax(int a, int b) { return a > b ? a : b; }

template <typename T> FW_HD float fw_load_f(const T* p) {
  return FwType<T>::to_f(*p);
}

// Activation codes shared with the Python loaders: 0 none, 1 ReLU, 2 SiLU.
FW_HD float fw_activate(float v, int act) {
  if (act == 1) return v > 0.f ? v : 0.f;
#ifdef __CUDA_ARCH__
  if (act == 2) return v / (1.f + __expf(-v));
#else
  if (act == 2) return v / (1.f + expf(-v));
#endif
  return v;
}

// ------------------------------------------------------------------------------ shared memory
__device__ __forceinline__ unsigned fw_smem_addr(const void* p) {
  unsigned r;
  asm("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(r) : "l"(p));
  return r;
}

// cp.async with zero fill: when `valid` is false no global byte is read and the destination is
// filled with zeros, which is how padding and tile edges become zeros in the implicit GEMM.
__device__ __forceinline__ void fw_cp_async16(unsigned dst, const void* src, bool valid) {
#if FW_SM80
  int n = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(n));
#else
  asm volatile("trap;");
#endif
}

__device__ __forceinline__ void fw_cp_async4(unsigned dst, const void* src, bool valid) {
#if FW_SM80
  int n = valid ? 4 : 0;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(n));
#else
  asm volatile("trap;");
#endif
}

__device__ __forceinline__ void fw_cp_async_commit() {
#if FW_SM80
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}

template <int N> __device__ __forceinline__ void fw_cp_async_wait() {
#if FW_SM80
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}

// ------------------------------------------------------------------------------ tensor cores
__device__ __forceinline__ void fw_ldmatrix_x4(unsigned addr, unsigned& r0, unsigned& r1,
                                               unsigned& r2, unsigned& r3) {
#if FW_SM80
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(addr));
#else
  r0 = r1 = r2 = r3 = 0u;
  asm volatile("trap;");
#endif
}

// D = A(16x16, row) * B(16x8, col) + D, f16 inputs, f32 accumulators.
__device__ __forceinline__ void fw_mma_f16(float* d, const unsigned* a, const unsigned* b) {
#if FW_SM80
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  asm volatile("trap;");
#endif
}

// D = A(16x8, row) * B(8x8, col) + D, tf32 inputs, f32 accumulators.
__device__ __forceinline__ void fw_mma_tf32(float* d, const unsigned* a, const unsigned* b) {
#if FW_SM80
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  asm volatile("trap;");
#endif
}

__device__ __forceinline__ unsigned fw_to_tf32(float f) {
#if FW_SM80
  unsigned r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(f));
  return r;
#else
  return __float_as_uint(f);
#endif
}

// ------------------------------------------------------------------------------ reductions
__device__ __forceinline__ float fw_warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum over the block, in a fixed order (so the result is bit-for-bit reproducible). `buf` holds
// at least 32 floats of shared memory. Every thread gets the total.
__device__ __forceinline__ float fw_block_sum(float v, float* buf) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int nwarps = (blockDim.x + 31) >> 5;
  v = fw_warp_sum(v);
  __syncthreads();  // buf may still be read by a previous call
  if (lane == 0) buf[warp] = v;
  __syncthreads();
  float t = (threadIdx.x < nwarps) ? buf[threadIdx.x] : 0.f;
  if (warp == 0) t = fw_warp_sum(t);
  if (threadIdx.x == 0) buf[0] = t;
  __syncthreads();
  return buf[0];
}
