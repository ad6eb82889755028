// The state every CUDA op shares: the current device's stream, a cuBLASLt handle with its
// workspace, and the device memory pool. One per process, made on first use on the device that
// is current then. Ops enqueue on context().stream and return; call synchronize() (or copy a
// result back) before reading results on the host.
//
// Keeping the stream here rather than in every op's signature keeps backend/ops.h free of CUDA
// headers: the model code above the backend is plain C++.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstddef>

#include "backend/cuda/memory_pool.h"

namespace zoft::cuda {

struct Context {
  int device = 0;
  cudaStream_t stream = nullptr;
  cublasLtHandle_t lt = nullptr;
  void* workspace = nullptr;  // cuBLASLt scratch (split-K partials etc.)
  size_t workspace_bytes = 0;
  MemoryPool pool;

  Context();
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
};

// Throws Error when there is no usable device.
Context& context();

// Waits for everything enqueued on the context's stream.
void synchronize();

// Copies on the context's stream. to_host waits for the copy (and everything before it).
void copy_to_device(void* device_dst, const void* host_src, size_t bytes);
void copy_to_host(void* host_dst, const void* device_src, size_t bytes);

}  // namespace zoft::cuda
