// A caching allocator for device memory. cudaMalloc / cudaFree synchronise the device and cost
// tens of microseconds; a forward pass allocates the same few sizes over and over. Freed blocks
// go to a free list per size class and are handed out again; nothing returns to the driver
// until trim() (or an allocation that would otherwise fail).
//
// Size classes: powers of two from 256 B to 1 MiB, then multiples of 2 MiB. A request is
// rounded up to its class, so at most half of a small block and 2 MiB of a large one are slack.
//
// Blocks are reused in stream order: the pool belongs to one Context whose ops all run on one
// stream, so a block released after enqueueing a kernel that reads it can be handed to the next
// kernel on that stream without waiting. Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace zoft::cuda {

struct PoolStats {
  size_t bytes_in_use = 0;       // handed out now (size-class bytes)
  size_t peak_bytes_in_use = 0;  // maximum of bytes_in_use since construction or reset_peak()
  size_t bytes_reserved = 0;     // obtained from cudaMalloc: in use + cached
  int64_t allocations = 0;       // allocate() calls
  int64_t cache_hits = 0;        // of those, served from a free list
  int64_t device_mallocs = 0;    // cudaMalloc calls
};

class MemoryPool {
 public:
  MemoryPool() = default;
  MemoryPool(const MemoryPool&) = delete;
  MemoryPool& operator=(const MemoryPool&) = delete;
  ~MemoryPool();  // frees the cache; blocks still in use are reported leaked, not freed

  // At least `bytes` of device memory, 256-byte aligned; nullptr for 0 bytes. Throws Error
  // when the device is out of memory even after the cache is emptied.
  void* allocate(size_t bytes);
  // p from allocate() of this pool (or nullptr).
  void release(void* p);
  // Returns every cached block to the driver.
  void trim();

  PoolStats stats() const;
  void reset_peak();
  static size_t size_class(size_t bytes);

 private:
  void trim_locked();

  mutable std::mutex mutex_;
  std::map<size_t, std::vector<void*>> free_;  // size class -> cached blocks
  std::unordered_map<void*, size_t> in_use_;   // block -> size class
  PoolStats stats_;
};

// A pool block owned by scope (temporaries inside an op).
class PoolBuffer {
 public:
  PoolBuffer(MemoryPool& pool, size_t bytes) : pool_(&pool), data_(pool.allocate(bytes)) {}
  PoolBuffer(const PoolBuffer&) = delete;
  PoolBuffer& operator=(const PoolBuffer&) = delete;
  ~PoolBuffer() { pool_->release(data_); }

  void* data() const { return data_; }
  template <class T>
  T* as() const {
    return static_cast<T*>(data_);
  }

 private:
  MemoryPool* pool_;
  void* data_;
};

}  // namespace zoft::cuda
