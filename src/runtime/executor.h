// The block executor: makes streamed blocks resident in reusable RAM slots just before the
// decoder runs them, reads ahead, and writes trained blocks back, with one I/O thread so that
// disk transfers overlap with compute (DESIGN "One ZO step": the ZO2 schedule).
//
//   acquire(b)  b's slot is ready (read ahead earlier, or read now); the model points at it;
//               the next `prefetch` streamed blocks in execution order are queued for reading
//   release(b)  after b's last pass; modified: b's slot is queued to be written back
//
// Transfers run in queue order on the I/O thread, so a slot being written back is refilled only
// after its write completes, and a block is handed out only once no transfer of its slot is
// pending (a write never reads memory that compute is changing). Bytes move unchanged between
// the slot and the file, which is why offloaded ZO equals resident ZO bit for bit.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "core/tensor.h"
#include "model/decoder.h"
#include "runtime/offload_file.h"

namespace zoft::runtime {

// Where the streamed blocks live in the offload file, and each parameter in its block's image
// (the slot holds a block's image: its parameters back to back, 64-byte aligned).
struct BlockLayout {
  std::vector<bool> streamed;          // per block
  std::vector<uint64_t> file_offset;   // per block (streamed only), 4 KiB aligned
  std::vector<uint64_t> image_bytes;   // per block
  std::vector<uint64_t> param_offset;  // per parameter id, inside its block's image
  std::vector<int64_t> param_block;    // per parameter id
};

struct ExecutorStats {
  uint64_t bytes_read = 0, bytes_written = 0;
  int64_t reads = 0, writes = 0, hits = 0;     // hits: acquires that needed no read
  double read_seconds = 0, write_seconds = 0;  // time the I/O thread spent transferring
  double stall_seconds = 0;                    // time compute waited in acquire
};

class BlockExecutor final : public BlockResidency {
 public:
  // `unbound` is a read-only region of at least slot_bytes: blocks not in a slot point there,
  // so a stray read sees zeros and a stray write faults instead of corrupting another block.
  BlockExecutor(Decoder& model, const OffloadFile& file, BlockLayout layout, int64_t slots,
                uint64_t slot_bytes, int64_t prefetch, const void* unbound);
  ~BlockExecutor() override;  // completes queued writes
  BlockExecutor(const BlockExecutor&) = delete;
  BlockExecutor& operator=(const BlockExecutor&) = delete;

  void acquire(int64_t block) override;
  void release(int64_t block, bool modified) override;
  bool held(int64_t block) const override;
  // Waits until every queued transfer is done: the offload file then holds every block as
  // last released. Rethrows an I/O error from the I/O thread.
  void flush();
  ExecutorStats stats() const;
  const BlockLayout& layout() const { return layout_; }

 private:
  struct Slot {
    Buffer memory;
    int64_t block = -1;  // the block the slot holds (or is being filled with)
    int pending = 0;     // queued transfers of this slot
    bool in_use = false;
    uint64_t last_use = 0;
  };
  struct Op {
    bool write;
    int slot;
    int64_t block;
  };

  void io_loop();
  // A slot for block x, not in use and not holding a block in `keep`; queues its read.
  // Returns -1 when every slot is taken. Caller holds mutex_.
  int claim(int64_t x, const std::vector<int64_t>& keep);
  void bind(int64_t block, const void* base);
  void rethrow_locked();

  Decoder& model_;
  const OffloadFile& file_;
  BlockLayout layout_;
  const void* unbound_;
  int64_t prefetch_;
  std::vector<std::vector<int64_t>> ahead_;  // per block: the streamed blocks that follow it
  std::vector<Slot> slots_;
  std::vector<int> slot_of_;   // per block: the slot holding it, or -1
  std::vector<int> bound_;     // per block: the slot the model points at, or -1 (unbound)
  std::vector<uint8_t> held_;  // per block: acquired and not released (compute thread only)
  uint64_t clock_ = 0;

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Op> queue_;
  bool stop_ = false;
  std::exception_ptr error_;
  ExecutorStats stats_;
  std::thread io_;
};

}  // namespace zoft::runtime
