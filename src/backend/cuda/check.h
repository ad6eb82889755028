// Every CUDA runtime and cuBLAS call goes through one of these macros: a failure throws
// zoft::Error naming the call, the file:line and the library's own error string. The throwing
// functions live in check.cc (g++), so .cu files need neither fmt nor the error header.
#pragma once

#include <cuda_runtime_api.h>

namespace zoft::cuda::detail {

[[noreturn]] void fail_cuda(cudaError_t err, const char* call, const char* file, int line);
// status is a cublasStatus_t; int keeps cuBLAS headers out of files that only launch kernels.
[[noreturn]] void fail_cublas(int status, const char* call, const char* file, int line);

}  // namespace zoft::cuda::detail

#define ZOFT_CUDA_CHECK(call)                                                \
  do {                                                                       \
    cudaError_t zoft_err_ = (call);                                          \
    if (zoft_err_ != cudaSuccess)                                            \
      ::zoft::cuda::detail::fail_cuda(zoft_err_, #call, __FILE__, __LINE__); \
  } while (0)

#define ZOFT_CUBLAS_CHECK(call)                                                   \
  do {                                                                            \
    int zoft_status_ = int(call);                                                 \
    if (zoft_status_ != 0)                                                        \
      ::zoft::cuda::detail::fail_cublas(zoft_status_, #call, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: a bad configuration is reported here, not at the next sync.
#define ZOFT_CUDA_CHECK_LAUNCH() ZOFT_CUDA_CHECK(cudaGetLastError())
