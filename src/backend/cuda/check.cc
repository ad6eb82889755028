// The throwing half of check.h.
#include "backend/cuda/check.h"

#include <cublasLt.h>

#include "core/error.h"

namespace zoft::cuda::detail {

void fail_cuda(cudaError_t err, const char* call, const char* file, int line) {
  cudaGetLastError();  // reset a non-sticky error so that the next call does not report it too
  fail("CUDA error {} ({}) in {} at {}:{}", cudaGetErrorName(err), cudaGetErrorString(err), call,
       file, line);
}

void fail_cublas(int status, const char* call, const char* file, int line) {
  fail("cuBLAS error {} ({}) in {} at {}:{}", status,
       cublasLtGetStatusString(cublasStatus_t(status)), call, file, line);
}

}  // namespace zoft::cuda::detail
