// The one thread pool of the process (DESIGN decision 7). BLAS is given the same thread count
// and is only ever called from outside pool tasks, so the cores are never oversubscribed.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace zoft {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return int(workers_.size()) + 1; }

  // Splits [0, n) into contiguous ranges, one per thread (the caller takes one), and waits.
  void parallel_for(int64_t n, const std::function<void(int64_t begin, int64_t end)>& body);

  // The process-wide pool; threads = 0 means all cores. Also sets the BLAS thread count.
  static ThreadPool& global();
  static void set_global_threads(int threads);

 private:
  void worker_loop(int index);

  std::vector<std::thread> workers_;
  // A task is published by writing body_ and n_, then bumping generation_ (under mutex_, so a
  // worker about to sleep cannot miss it). Workers and the caller spin briefly on the atomics
  // before sleeping on the condition variables.
  std::mutex mutex_;
  std::condition_variable start_cv_, done_cv_;
  const std::function<void(int64_t, int64_t)>* body_ = nullptr;
  int64_t n_ = 0;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
};

// Shorthand for ThreadPool::global().parallel_for.
void parallel_for(int64_t n, const std::function<void(int64_t begin, int64_t end)>& body);

}  // namespace zoft
