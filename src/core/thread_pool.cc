#include "core/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <memory>

#include "core/error.h"
#if defined(__linux__)
#include <sched.h>
#endif
#if defined(__x86_64__)
#include <immintrin.h>
#endif

extern "C" void openblas_set_num_threads(int);

namespace zoft {

static std::pair<int64_t, int64_t> chunk_of(int64_t n, int parts, int index) {
  int64_t base = n / parts, extra = n % parts;
  int64_t begin = index * base + std::min<int64_t>(index, extra);
  return {begin, begin + base + (index < extra ? 1 : 0)};
}

// The ops of a decode step come a few microseconds apart: waking a sleeping thread through the
// kernel costs about as much as such an op, so a thread waits this long spinning first.
constexpr auto kSpin = std::chrono::microseconds(50);

// True once ready() holds, false if kSpin passed first.
template <class Ready>
static bool spin_until(Ready ready) {
  const auto deadline = std::chrono::steady_clock::now() + kSpin;
  for (int i = 0;; ++i) {
    if (ready()) return true;
#if defined(__x86_64__)
    _mm_pause();
#endif
    if ((i & 63) == 63 && std::chrono::steady_clock::now() > deadline) return false;
  }
}

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < std::max(threads, 1); ++i)
    workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  start_cv_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  for (;;) {
    auto posted = [&] {
      return stop_.load() || generation_.load(std::memory_order_acquire) != seen;
    };
    if (!spin_until(posted)) {
      std::unique_lock lock(mutex_);
      start_cv_.wait(lock, posted);
    }
    if (stop_) return;
    seen = generation_.load(std::memory_order_acquire);
    auto [b, e] = chunk_of(n_, size(), index);
    if (b < e) (*body_)(b, e);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard lock(mutex_);  // the caller may be between its check and its wait
      done_cv_.notify_one();
    }
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& body) {
  if (n <= 0) return;
  if (workers_.empty() || n == 1) {
    body(0, n);
    return;
  }
  body_ = &body;
  n_ = n;
  pending_.store(int(workers_.size()), std::memory_order_relaxed);
  {
    std::lock_guard lock(mutex_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  start_cv_.notify_all();
  auto [b, e] = chunk_of(n, size(), 0);
  if (b < e) body(b, e);
  auto done = [&] { return pending_.load(std::memory_order_acquire) == 0; };
  if (!spin_until(done)) {
    std::unique_lock lock(mutex_);
    done_cv_.wait(lock, done);
  }
}

static std::unique_ptr<ThreadPool>& global_slot() {
  static std::unique_ptr<ThreadPool> pool;
  return pool;
}

int available_cores() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
#endif
  return int(std::max(1u, std::thread::hardware_concurrency()));
}

int max_threads() {
  return 4 * available_cores();
}

void check_thread_count(int64_t threads, const std::string& what) {
  if (threads < 0) fail("{}: threads must be >= 0 (0 = all cores), got {}", what, threads);
  if (threads > max_threads())
    fail("{}: {} threads is more than 4 x the {} cores available: use at most {} (0 = all cores)",
         what, threads, available_cores(), max_threads());
}

void ThreadPool::set_global_threads(int threads) {
  check_thread_count(threads, "threads");
  if (threads == 0) threads = available_cores();
  global_slot() = std::make_unique<ThreadPool>(threads);
  openblas_set_num_threads(threads);
}

ThreadPool& ThreadPool::global() {
  if (!global_slot()) set_global_threads(0);
  return *global_slot();
}

void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& body) {
  ThreadPool::global().parallel_for(n, body);
}

}  // namespace zoft
