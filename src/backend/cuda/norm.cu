// layer_norm and rms_norm: one block per row. The variance is taken around the mean in a second
// pass over the row (as the CPU backend does), which avoids E[x^2] - E[x]^2 cancellation; the
// row is re-read from global memory (L1 / L2 hits) rather than staged in shared memory, so any
// dim works. out may equal x: each element is written after the last read of its row.
#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace zoft::cuda::kernels {
namespace {

__device__ float row_sum(const float* row, int64_t dim, float shift, bool square, float* scratch) {
  float acc = 0.0f;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
    float d = row[i] - shift;
    acc += square ? d * d : d;
  }
  return block_sum(acc, scratch);
}

__global__ void layer_norm_kernel(const float* x, const float* gamma, const float* beta, float* out,
                                  int64_t dim, float eps) {
  __shared__ float scratch[32];
  const float* row = x + blockIdx.x * dim;
  float* dst = out + blockIdx.x * dim;
  const float mean = row_sum(row, dim, 0.0f, false, scratch) / float(dim);
  const float var = row_sum(row, dim, mean, true, scratch) / float(dim);
  const float inv = 1.0f / sqrtf(var + eps);
  __syncthreads();  // every thread has read the row before any writes it (out == x)
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x)
    dst[i] = (row[i] - mean) * inv * gamma[i] + (beta ? beta[i] : 0.0f);
}

__global__ void rms_norm_kernel(const float* x, const float* gamma, float* out, int64_t dim,
                                float eps, float gamma_offset) {
  __shared__ float scratch[32];
  const float* row = x + blockIdx.x * dim;
  float* dst = out + blockIdx.x * dim;
  const float mean_sq = row_sum(row, dim, 0.0f, true, scratch) / float(dim);
  const float inv = 1.0f / sqrtf(mean_sq + eps);
  __syncthreads();
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x)
    dst[i] = row[i] * inv * (gamma[i] + gamma_offset);
}

// Small rows get a small block: no warp should only wait at the reductions.
int threads_for(int64_t dim) {
  int threads = 32;
  while (threads < 1024 && threads < dim / 4) threads *= 2;
  return threads;
}

}  // namespace

void layer_norm(const float* x, const float* gamma, const float* beta, float* out, int64_t rows,
                int64_t dim, float eps, cudaStream_t stream) {
  if (rows == 0 || dim == 0) return;
  layer_norm_kernel<<<unsigned(rows), threads_for(dim), 0, stream>>>(x, gamma, beta, out, dim, eps);
  ZOFT_CUDA_CHECK_LAUNCH();
}

void rms_norm(const float* x, const float* gamma, float* out, int64_t rows, int64_t dim, float eps,
              float gamma_offset, cudaStream_t stream) {
  if (rows == 0 || dim == 0) return;
  rms_norm_kernel<<<unsigned(rows), threads_for(dim), 0, stream>>>(x, gamma, out, dim, eps,
                                                                   gamma_offset);
  ZOFT_CUDA_CHECK_LAUNCH();
}

}  // namespace zoft::cuda::kernels
