// The GPU tier's block streamer: decoder blocks that do not fit in GPU memory live in CPU RAM
// (pinned) or in the offload file, and pass through a few reusable device slots just in time.
// Three streams, ordered by events only (runtime/streams.h):
//
//   upload      waits until the slot's previous block is computed and written back, and until
//               this block's last write-back to its home has landed; copies the block in (RAM:
//               from its pinned image; disk: pread into a pinned staging buffer, then copy)
//   compute     waits for the upload; runs `prepare` (ZO: the pending update fused with +eps)
//               and `compute` (the passes) on the slot
//   write-back  waits for compute; copies the slot back to its home (RAM image, or a staging
//               buffer that the host then pwrites)
//
// Uploads are enqueued up to `prefetch` blocks ahead of compute. Slots are taken round robin,
// so a slot is reused by the block `slots` positions later, after that block's predecessor's
// events. The host blocks only where the host itself touches memory: before refilling a staging
// buffer (its last copy must be done) and before a pwrite (the copy into it must be done).
// Bytes move unchanged (a bf16 block is transferred as bf16), so streaming does not change any
// result: what compute sees in a slot is exactly the block's current image.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "runtime/offload_file.h"
#include "runtime/plan.h"
#include "runtime/streams.h"

namespace zoft::runtime {

struct StreamedBlock {
  Tier home = Tier::Cpu;     // Cpu: the image is at `host`; Disk: in the file at `file_offset`
  void* host = nullptr;      // pinned (Device::allocate_pinned) for asynchronous copies
  uint64_t file_offset = 0;  // 4 KiB aligned
  uint64_t bytes = 0;
};

struct StreamerOptions {
  int64_t slots = 3;     // device slots of the largest block's size
  int64_t prefetch = 2;  // uploads enqueued ahead of compute (at most slots - 1)
  int64_t staging = 2;   // pinned staging buffers for disk blocks (none without disk blocks)
};

struct StreamerStats {
  uint64_t bytes_uploaded = 0, bytes_written_back = 0;  // over the host-device bus
  uint64_t disk_read = 0, disk_written = 0;
  int64_t uploads = 0, write_backs = 0;
  int64_t staging_waits = 0;  // host waits before refilling a staging buffer
};

class GpuBlockStreamer {
 public:
  // Work on block `block` resident in device memory `slot`, enqueued on `compute`.
  using Work = std::function<void(int64_t block, void* slot, Stream& compute)>;

  // The ZO2 schedule of one step for one block (DESIGN "One ZO step"), each on the compute
  // stream while the block is resident: update = the pending update fused with +eps z.
  struct Zo2Work {
    Work update, plus_pass, flip, minus_pass, restore;
  };

  // `file` may be null when no block lives on disk. `device` and `file` must outlive this.
  GpuBlockStreamer(Device& device, std::vector<StreamedBlock> blocks, const OffloadFile* file,
                   StreamerOptions options);
  ~GpuBlockStreamer();  // waits for everything and completes pending disk writes
  GpuBlockStreamer(const GpuBlockStreamer&) = delete;
  GpuBlockStreamer& operator=(const GpuBlockStreamer&) = delete;

  // One pass over `order` (block numbers, each at most once): every block is uploaded into a
  // slot, `prepare` (may be empty) and `compute` (may be empty) are enqueued on the compute
  // stream, and when `write_back` the slot is copied back to its home. Returns once everything
  // is enqueued; flush() waits for it.
  void run(const std::vector<int64_t>& order, const Work& prepare, const Work& compute,
           bool write_back);
  // The ZO2 step: both perturbed passes per resident block, the update fused at upload time,
  // write-back overlapped with the next block's compute.
  void zo2_step(const std::vector<int64_t>& order, const Zo2Work& work);
  // The host waits for all enqueued work; then every block's home holds its last image.
  void flush();

  StreamerStats stats() const { return stats_; }
  int64_t slots() const { return int64_t(slots_.size()); }
  int64_t prefetch() const { return prefetch_; }
  uint64_t slot_bytes() const { return slot_bytes_; }
  const void* slot_memory(int64_t i) const { return slots_[size_t(i)].memory; }

 private:
  struct Slot {
    void* memory = nullptr;
    std::unique_ptr<Event> uploaded, computed, written;
  };
  struct Staging {
    void* memory = nullptr;
    std::unique_ptr<Event> done;  // its last copy (upload from it, or write-back into it)
    int64_t pending_write = -1;   // block whose image it holds for a pwrite not yet done
  };

  void upload(int64_t block, Slot& slot);
  void enqueue_compute(int64_t block, Slot& slot, const Work& prepare, const Work& compute);
  void write_back(int64_t block, Slot& slot);
  // A staging buffer ready to be refilled by the host: its last copy done, its pwrite done.
  Staging& take_staging();
  void complete_write(Staging& staging);
  void complete_writes_of(int64_t block);

  Device& device_;
  std::vector<StreamedBlock> blocks_;
  const OffloadFile* file_;
  int64_t prefetch_;
  uint64_t slot_bytes_ = 0;
  std::unique_ptr<Stream> upload_, write_back_;
  std::vector<Slot> slots_;
  std::vector<Staging> staging_;
  std::vector<std::unique_ptr<Event>> home_written_;  // per block: its last write-back to RAM
  int64_t next_slot_ = 0, next_staging_ = 0;
  StreamerStats stats_;
};

}  // namespace zoft::runtime
