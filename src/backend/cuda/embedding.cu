// embedding: ids are checked by one kernel before a second one gathers, so that a bad batch
// leaves out untouched (as on the CPU); the op reads the check's result back to throw.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace zoft::cuda::kernels {
namespace {

__global__ void find_bad_ids_kernel(const int32_t* ids, int64_t rows, int64_t vocab,
                                    int64_t* first_bad) {
  for (int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; r < rows;
       r += int64_t(gridDim.x) * blockDim.x)
    if (ids[r] < 0 || ids[r] >= vocab)
      atomicMin(reinterpret_cast<unsigned long long*>(first_bad), (unsigned long long)r);
}

__device__ float widen(const void* table, int dtype, int64_t i) {
  if (dtype == 0) return static_cast<const float*>(table)[i];
  if (dtype == 1) return __bfloat162float(static_cast<const __nv_bfloat16*>(table)[i]);
  return __half2float(static_cast<const __half*>(table)[i]);
}

// One block column per id: blockIdx.x = row (x allows 2^31 - 1 blocks; y only 65535), threads
// over the dimension.
__global__ void gather_kernel(const void* table, int dtype, int64_t dim, const int32_t* ids,
                              float scale, float* out) {
  const int64_t r = blockIdx.x, base = int64_t(ids[r]) * dim;
  for (int64_t j = blockIdx.y * int64_t(blockDim.x) + threadIdx.x; j < dim;
       j += int64_t(gridDim.y) * blockDim.x)
    out[r * dim + j] = widen(table, dtype, base + j) * scale;
}

}  // namespace

void find_bad_ids(const int32_t* ids, int64_t rows, int64_t vocab, int64_t* first_bad,
                  cudaStream_t stream) {
  if (rows == 0) return;
  find_bad_ids_kernel<<<grid_for(rows), kThreads, 0, stream>>>(ids, rows, vocab, first_bad);
  ZOFT_CUDA_CHECK_LAUNCH();
}

void embedding(const void* table, int dtype, int64_t dim, const int32_t* ids, int64_t rows,
               float scale, float* out, cudaStream_t stream) {
  if (rows == 0 || dim == 0) return;
  unsigned column_blocks = grid_for(dim);
  if (column_blocks > 65535) column_blocks = 65535;  // the y limit; the loop covers the rest
  dim3 grid(unsigned(rows), column_blocks);
  gather_kernel<<<grid, kThreads, 0, stream>>>(table, dtype, dim, ids, scale, out);
  ZOFT_CUDA_CHECK_LAUNCH();
}

}  // namespace zoft::cuda::kernels
