// Elementwise kernels: add, activations, gated activations, softcap, rope, f32 -> bf16 / f16,
// bias rows. Grid-stride loops over flat indices; each thread's work is one element.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace zoft::cuda::kernels {
namespace {

// The same forms as the CPU scalar code (backend/cpu/elementwise.cc), for the same reasons:
// erfc keeps GELU's negative tail accurate; x sigmoid(2u) avoids 1 + tanh(u) cancelling.
__device__ float act(Act kind, float x) {
  switch (kind) {
    case Act::ReLU:
      return x > 0.0f ? x : 0.0f;
    case Act::GeluErf:
      return 0.5f * x * erfcf(-x * 0.70710678118654752f);
    case Act::GeluTanh: {
      float u = 0.79788456080286536f * (x + 0.044715f * x * x * x);
      return x / (1.0f + expf(-2.0f * u));
    }
    case Act::SiLU:
      return x / (1.0f + expf(-x));
  }
  return x;
}

__global__ void add_kernel(float* y, const float* x, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    y[i] += x[i];
}

__global__ void act_kernel(Act kind, float* x, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    x[i] = act(kind, x[i]);
}

__global__ void gated_kernel(Act kind, const float* gate, const float* up, int64_t stride,
                             float* out, int64_t rows, int64_t dim) {
  const int64_t n = rows * dim;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    int64_t r = i / dim, j = i % dim;
    out[i] = act(kind, gate[r * stride + j]) * up[r * stride + j];
  }
}

__global__ void softcap_kernel(float* x, int64_t n, float cap, float inv_cap) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    x[i] = cap * tanhf(x[i] * inv_cap);
}

// One thread per (row, head, i < half): the pair (x1[i], x2[i]). The angle is rounded to f32
// before cos / sin, as HF and the CPU backend compute it.
__global__ void rope_kernel(float* x, const int32_t* positions, int64_t rows, int64_t heads,
                            int64_t head_dim, int64_t half, const float* inv_freq, float scaling) {
  const int64_t n = rows * heads * half;
  for (int64_t u = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; u < n;
       u += int64_t(gridDim.x) * blockDim.x) {
    int64_t i = u % half, rh = u / half, r = rh / heads;
    float angle = float(positions[r]) * inv_freq[i];
    float s, c;
    sincosf(angle, &s, &c);
    c *= scaling;
    s *= scaling;
    float* x1 = x + rh * head_dim;
    float a = x1[i], b = x1[half + i];
    x1[i] = a * c - b * s;
    x1[half + i] = b * c + a * s;
  }
}

__global__ void to_bf16_kernel(const float* src, __nv_bfloat16* dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = __float2bfloat16_rn(src[i]);
}

__global__ void to_f16_kernel(const float* src, __half* dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = __float2half_rn(src[i]);
}

__global__ void bias_kernel(float* y, const float* bias, int64_t M, int64_t N, bool accumulate) {
  const int64_t n = M * N;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    float b = bias ? bias[i % N] : 0.0f;
    y[i] = accumulate ? y[i] + b : b;
  }
}

}  // namespace

void add_inplace(float* y, const float* x, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  add_kernel<<<grid_for(n), kThreads, 0, stream>>>(y, x, n);
  ZOFT_CUDA_CHECK_LAUNCH();
}

void activation(Act kind, float* x, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  act_kernel<<<grid_for(n), kThreads, 0, stream>>>(kind, x, n);
  ZOFT_CUDA_CHECK_LAUNCH();
}

void gated_activation(Act kind, const float* gate, const float* up, int64_t in_row_stride,
                      float* out, int64_t rows, int64_t dim, cudaStream_t stream) {
  if (rows * dim == 0) return;
  gated_kernel<<<grid_for(rows * dim), kThreads, 0, stream>>>(kind, gate, up, in_row_stride, out,
                                                              rows, dim);
  ZOFT_CUDA_CHECK_LAUNCH();
}

void softcap(float* x, int64_t n, float cap, cudaStream_t stream) {
  if (n == 0) return;
  softcap_kernel<<<grid_for(n), kThreads, 0, stream>>>(x, n, cap, 1.0f / cap);
  ZOFT_CUDA_CHECK_LAUNCH();
}

void rope(float* x, const int32_t* positions, int64_t rows, int64_t heads, int64_t head_dim,
          int64_t rotary_dim, const float* inv_freq, float attention_scaling, cudaStream_t stream) {
  const int64_t half = rotary_dim / 2, n = rows * heads * half;
  if (n == 0) return;
  rope_kernel<<<grid_for(n), kThreads, 0, stream>>>(x, positions, rows, heads, head_dim, half,
                                                    inv_freq, attention_scaling);
  ZOFT_CUDA_CHECK_LAUNCH();
}

void f32_to_half(const float* src, void* dst, bool is_bf16, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  if (is_bf16)
    to_bf16_kernel<<<grid_for(n), kThreads, 0, stream>>>(src, static_cast<__nv_bfloat16*>(dst), n);
  else
    to_f16_kernel<<<grid_for(n), kThreads, 0, stream>>>(src, static_cast<__half*>(dst), n);
  ZOFT_CUDA_CHECK_LAUNCH();
}

void bias_rows(float* y, const float* bias, int64_t M, int64_t N, bool accumulate,
               cudaStream_t stream) {
  if (M * N == 0) return;
  bias_kernel<<<grid_for(M * N), kThreads, 0, stream>>>(y, bias, M, N, accumulate);
  ZOFT_CUDA_CHECK_LAUNCH();
}

}  // namespace zoft::cuda::kernels
