// MemoryPool: free lists per size class over cudaMalloc.
#include "backend/cuda/memory_pool.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>

#include "backend/cuda/check.h"
#include "core/error.h"

namespace zoft::cuda {

constexpr size_t kMinClass = 256;               // cudaMalloc alignment; keeps every block aligned
constexpr size_t kLargeFrom = size_t(1) << 20;  // above this, classes are multiples of kLargeStep
constexpr size_t kLargeStep = size_t(2) << 20;

size_t MemoryPool::size_class(size_t bytes) {
  if (bytes <= kMinClass) return kMinClass;
  if (bytes <= kLargeFrom) {
    size_t c = kMinClass;
    while (c < bytes) c *= 2;
    return c;
  }
  return (bytes + kLargeStep - 1) / kLargeStep * kLargeStep;
}

MemoryPool::~MemoryPool() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!in_use_.empty())  // a destructor must not throw; say it once on stderr
    std::fprintf(stderr, "zoft: CUDA memory pool destroyed with %zu blocks (%zu bytes) in use\n",
                 in_use_.size(), stats_.bytes_in_use);
  for (auto& [size, blocks] : free_)
    for (void* p : blocks) cudaFree(p);  // errors ignored: the context may be gone at exit
}

void* MemoryPool::allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  const size_t cls = size_class(bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  ++stats_.allocations;
  void* p = nullptr;
  auto it = free_.find(cls);
  if (it != free_.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
    ++stats_.cache_hits;
  } else {
    cudaError_t err = cudaMalloc(&p, cls);
    if (err == cudaErrorMemoryAllocation) {  // cached blocks of other classes may make room
      cudaGetLastError();
      trim_locked();
      err = cudaMalloc(&p, cls);
    }
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      size_t free_bytes = 0, total_bytes = 0;
      cudaMemGetInfo(&free_bytes, &total_bytes);
      fail(
          "CUDA out of memory: {} bytes requested, {} in use by zoft, {} of {} free on the "
          "device (lower the batch size or --max-memory gpu=...)",
          cls, stats_.bytes_in_use, free_bytes, total_bytes);
    }
    ZOFT_CUDA_CHECK(err);
    ++stats_.device_mallocs;
    stats_.bytes_reserved += cls;
  }
  in_use_[p] = cls;
  stats_.bytes_in_use += cls;
  stats_.peak_bytes_in_use = std::max(stats_.peak_bytes_in_use, stats_.bytes_in_use);
  return p;
}

void MemoryPool::release(void* p) {
  if (!p) return;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = in_use_.find(p);
  ZOFT_CHECK(it != in_use_.end(), "CUDA memory pool: release of {} which it did not allocate", p);
  stats_.bytes_in_use -= it->second;
  free_[it->second].push_back(p);
  in_use_.erase(it);
}

void MemoryPool::trim() {
  std::lock_guard<std::mutex> lock(mutex_);
  trim_locked();
}

// Cached blocks may still be read by kernels enqueued before their release: wait for the device
// before handing them back to the driver (cudaFree would synchronise anyway).
void MemoryPool::trim_locked() {
  ZOFT_CUDA_CHECK(cudaDeviceSynchronize());
  for (auto& [size, blocks] : free_) {
    for (void* p : blocks) ZOFT_CUDA_CHECK(cudaFree(p));
    stats_.bytes_reserved -= size * blocks.size();
    blocks.clear();
  }
}

PoolStats MemoryPool::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void MemoryPool::reset_peak() {
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.peak_bytes_in_use = stats_.bytes_in_use;
}

}  // namespace zoft::cuda
