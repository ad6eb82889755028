// Context: stream, cuBLASLt handle + workspace, memory pool; device_available().
#include "backend/cuda/context.h"

#include "backend/cuda/check.h"
#include "backend/cuda/ops.h"
#include "core/error.h"

namespace zoft::cuda {

// NVIDIA's recommendation for Hopper: 32 MiB lets cuBLASLt use every split-K / stream-K kernel.
constexpr size_t kWorkspaceBytes = size_t(32) << 20;

bool device_available() {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {  // no driver, no device: an answer, not an error
    cudaGetLastError();
    return false;
  }
  return count > 0;
}

Context::Context() {
  ZOFT_CHECK(device_available(),
             "CUDA: no GPU visible (cudaGetDeviceCount found none); run with --device cpu");
  ZOFT_CUDA_CHECK(cudaGetDevice(&device));
  // A blocking stream: it orders with the legacy default stream, so a caller's plain
  // cudaMemcpy before or after an op sees the op's inputs and outputs in order.
  ZOFT_CUDA_CHECK(cudaStreamCreate(&stream));
  ZOFT_CUBLAS_CHECK(cublasLtCreate(&lt));
  ZOFT_CUDA_CHECK(cudaMalloc(&workspace, kWorkspaceBytes));
  workspace_bytes = kWorkspaceBytes;
}

// Errors are ignored: at process exit the driver may already be shutting down.
Context::~Context() {
  if (stream) cudaStreamSynchronize(stream);
  try {
    pool.trim();
  } catch (...) {
  }
  if (workspace) cudaFree(workspace);
  if (lt) cublasLtDestroy(lt);
  if (stream) cudaStreamDestroy(stream);
}

Context& context() {
  static Context ctx;  // thread-safe first use; lives until exit
  return ctx;
}

void synchronize() {
  ZOFT_CUDA_CHECK(cudaStreamSynchronize(context().stream));
}

void copy_to_device(void* device_dst, const void* host_src, size_t bytes) {
  if (bytes == 0) return;
  ZOFT_CUDA_CHECK(
      cudaMemcpyAsync(device_dst, host_src, bytes, cudaMemcpyHostToDevice, context().stream));
}

void copy_to_host(void* host_dst, const void* device_src, size_t bytes) {
  if (bytes == 0) return;
  ZOFT_CUDA_CHECK(
      cudaMemcpyAsync(host_dst, device_src, bytes, cudaMemcpyDeviceToHost, context().stream));
  synchronize();
}

}  // namespace zoft::cuda
