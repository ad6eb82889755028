// The one thread pool of the process (DESIGN decision 7). BLAS is given the same thread count
// and is only ever called from outside pool tasks, so the cores are never oversubscribed.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
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
  // Checks the count first (check_thread_count), so a mistyped 100000 never starts a thread.
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

// Cores this process may run on: its affinity mask (taskset, cgroup cpusets), else
// std::thread::hardware_concurrency; at least 1.
int available_cores();
// More threads than a few per core only add switching; a count beyond this is a mistake.
int max_threads();  // 4 x available_cores()
// Throws Error unless 0 <= threads <= max_threads(); `what` names the setting in the message
// (e.g. "--threads" or "recipe.yaml: placement.threads").
void check_thread_count(int64_t threads, const std::string& what);

// Shorthand for ThreadPool::global().parallel_for.
void parallel_for(int64_t n, const std::function<void(int64_t begin, int64_t end)>& body);

}  // namespace zoft
