#include "runtime/executor.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "model/parameters.h"

namespace zoft::runtime {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

BlockExecutor::BlockExecutor(Decoder& model, const OffloadFile& file, BlockLayout layout,
                             int64_t slots, uint64_t slot_bytes, int64_t prefetch,
                             const void* unbound)
    : model_(model),
      file_(file),
      layout_(std::move(layout)),
      unbound_(unbound),
      prefetch_(prefetch) {
  ZOFT_CHECK(slots >= 1, "the block executor needs at least one slot");
  const int64_t blocks = int64_t(layout_.streamed.size());
  for (int64_t b = 0; b < blocks; ++b)
    ZOFT_CHECK(!layout_.streamed[size_t(b)] || layout_.image_bytes[size_t(b)] <= slot_bytes,
               "block {} ({} bytes) does not fit a slot of {} bytes", b,
               layout_.image_bytes[size_t(b)], slot_bytes);
  slots_.resize(size_t(slots));
  for (Slot& s : slots_) s.memory = Buffer(slot_bytes);
  slot_of_.assign(size_t(blocks), -1);
  bound_.assign(size_t(blocks), -1);
  held_.assign(size_t(blocks), 0);
  // Forwards visit blocks 0..L+1 over and over (ZO2 steps, evaluation, decoding), so what comes
  // after block b is the next streamed blocks in cyclic order.
  ahead_.resize(size_t(blocks));
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t i = 1; i < blocks && int64_t(ahead_[size_t(b)].size()) < prefetch_; ++i) {
      int64_t x = (b + i) % blocks;
      if (layout_.streamed[size_t(x)]) ahead_[size_t(b)].push_back(x);
    }
  io_ = std::thread([this] { io_loop(); });
}

BlockExecutor::~BlockExecutor() {
  try {
    flush();
  } catch (const std::exception&) {
    // Destruction after an error: the run is failing anyway and the message was reported.
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  io_.join();
}

void BlockExecutor::io_loop() {
  for (;;) {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;
    Op op = queue_.front();
    queue_.pop_front();
    bool skip = error_ != nullptr;  // after a failure, drain without touching the file
    lock.unlock();

    const size_t n = size_t(layout_.image_bytes[size_t(op.block)]);
    const uint64_t offset = layout_.file_offset[size_t(op.block)];
    void* memory = slots_[size_t(op.slot)].memory.data();
    auto start = Clock::now();
    std::exception_ptr error;
    if (!skip) {
      try {
        if (op.write)
          file_.write(memory, n, offset);
        else
          file_.read(memory, n, offset);
      } catch (...) {
        error = std::current_exception();
      }
    }
    double took = seconds_since(start);

    lock.lock();
    if (error && !error_) error_ = error;
    if (op.write) {
      stats_.bytes_written += n, stats_.writes += 1, stats_.write_seconds += took;
    } else {
      stats_.bytes_read += n, stats_.reads += 1, stats_.read_seconds += took;
    }
    slots_[size_t(op.slot)].pending -= 1;
    lock.unlock();
    cv_.notify_all();
  }
}

void BlockExecutor::rethrow_locked() {
  if (error_) std::rethrow_exception(error_);
}

void BlockExecutor::bind(int64_t block, const void* base) {
  bind_block(model_, block, [&](const ParameterRef& p) {
    return static_cast<void*>(const_cast<uint8_t*>(static_cast<const uint8_t*>(base)) +
                              layout_.param_offset[p.id]);
  });
}

int BlockExecutor::claim(int64_t x, const std::vector<int64_t>& keep) {
  int best = -1;
  for (int s = 0; s < int(slots_.size()); ++s) {
    const Slot& slot = slots_[size_t(s)];
    if (slot.in_use || std::find(keep.begin(), keep.end(), slot.block) != keep.end()) continue;
    // An empty slot first, else the least recently used one.
    if (best < 0 || (slot.block < 0) > (slots_[size_t(best)].block < 0) ||
        ((slot.block < 0) == (slots_[size_t(best)].block < 0) &&
         slot.last_use < slots_[size_t(best)].last_use))
      best = s;
  }
  if (best < 0) return -1;
  Slot& slot = slots_[size_t(best)];
  if (slot.block >= 0) {
    // Evict: the block's bytes are (or, by queue order, will be) in the file already.
    slot_of_[size_t(slot.block)] = -1;
    if (bound_[size_t(slot.block)] == best) {
      bind(slot.block, unbound_);
      bound_[size_t(slot.block)] = -1;
    }
  }
  slot.block = x;
  slot_of_[size_t(x)] = best;
  slot.pending += 1;
  queue_.push_back({false, best, x});
  cv_.notify_all();
  return best;
}

void BlockExecutor::acquire(int64_t block) {
  std::unique_lock<std::mutex> lock(mutex_);
  rethrow_locked();
  ZOFT_CHECK(!held_[size_t(block)], "offload: block {} acquired twice", block);
  const std::vector<int64_t>& ahead = ahead_[size_t(block)];
  if (layout_.streamed[size_t(block)]) {
    int s = slot_of_[size_t(block)];
    if (s < 0) {
      s = claim(block, ahead);
      if (s < 0) s = claim(block, {});  // out of order (not the cycle we read ahead for)
      if (s < 0) fail("offload: no free slot for block {} (every slot is in use)", block);
    } else if (slots_[size_t(s)].pending == 0) {
      stats_.hits += 1;
    }
    Slot& slot = slots_[size_t(s)];
    if (slot.pending > 0 && !error_) {
      auto start = Clock::now();
      cv_.wait(lock, [&] { return slot.pending == 0 || error_ != nullptr; });
      stats_.stall_seconds += seconds_since(start);
    }
    rethrow_locked();
    slot.in_use = true;
    slot.last_use = ++clock_;
    if (bound_[size_t(block)] != s) {
      bind(block, slot.memory.data());
      bound_[size_t(block)] = s;
    }
  }
  held_[size_t(block)] = 1;
  // Read ahead while this block computes; never evict what is about to be needed.
  std::vector<int64_t> keep = ahead;
  keep.push_back(block);
  for (int64_t x : ahead)
    if (slot_of_[size_t(x)] < 0 && claim(x, keep) < 0) break;
}

void BlockExecutor::release(int64_t block, bool modified) {
  held_[size_t(block)] = 0;
  if (!layout_.streamed[size_t(block)]) return;
  std::lock_guard<std::mutex> lock(mutex_);
  int s = slot_of_[size_t(block)];
  ZOFT_CHECK(s >= 0 && slots_[size_t(s)].in_use, "offload: block {} released but not acquired",
             block);
  Slot& slot = slots_[size_t(s)];
  slot.in_use = false;
  if (modified) {
    slot.pending += 1;
    queue_.push_back({true, s, block});
    cv_.notify_all();
  }
}

bool BlockExecutor::held(int64_t block) const {
  return held_[size_t(block)] != 0;
}

void BlockExecutor::flush() {
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait(lock, [&] {
    if (error_) return true;
    if (!queue_.empty()) return false;
    for (const Slot& s : slots_)
      if (s.pending) return false;
    return true;
  });
  rethrow_locked();
}

ExecutorStats BlockExecutor::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

}  // namespace zoft::runtime
