#include "runtime/gpu_streamer.h"

#include <algorithm>

#include "core/error.h"

namespace zoft::runtime {

GpuBlockStreamer::GpuBlockStreamer(Device& device, std::vector<StreamedBlock> blocks,
                                   const OffloadFile* file, StreamerOptions options)
    : device_(device), blocks_(std::move(blocks)), file_(file) {
  ZOFT_CHECK(options.slots >= 1, "the GPU streamer needs at least one slot, got {}", options.slots);
  ZOFT_CHECK(options.prefetch >= 0, "prefetch must be >= 0, got {}", options.prefetch);
  // Uploading block j + slots while block j computes would target j's own slot.
  prefetch_ = std::min(options.prefetch, options.slots - 1);
  bool any_disk = false;
  for (const StreamedBlock& b : blocks_) {
    slot_bytes_ = std::max(slot_bytes_, (b.bytes + 4095) / 4096 * 4096);
    if (b.home == Tier::Disk) any_disk = true;
    ZOFT_CHECK(b.home != Tier::Gpu, "a streamed block cannot live on the GPU");
    ZOFT_CHECK(b.home == Tier::Disk || b.host != nullptr || b.bytes == 0,
               "a block streamed from RAM needs its host image");
  }
  ZOFT_CHECK(!any_disk || file_ != nullptr, "blocks on disk need the offload file");
  upload_ = device_.make_stream();
  write_back_ = device_.make_stream();
  slots_.resize(size_t(options.slots));
  for (Slot& s : slots_) {
    s.memory = device_.allocate(slot_bytes_);
    s.uploaded = device_.make_event();
    s.computed = device_.make_event();
    s.written = device_.make_event();
  }
  if (any_disk) {
    ZOFT_CHECK(options.staging >= 1, "blocks on disk need at least one staging buffer");
    staging_.resize(size_t(options.staging));
    for (Staging& s : staging_) {
      s.memory = device_.allocate_pinned(slot_bytes_);
      s.done = device_.make_event();
    }
  }
  for (size_t b = 0; b < blocks_.size(); ++b) home_written_.push_back(device_.make_event());
}

GpuBlockStreamer::~GpuBlockStreamer() {
  try {
    flush();
  } catch (const std::exception&) {
    // Destruction after an error: the run is failing anyway and the message was reported.
  }
  for (Staging& s : staging_) device_.release_pinned(s.memory);
  for (Slot& s : slots_) device_.release(s.memory);
}

void GpuBlockStreamer::run(const std::vector<int64_t>& order, const Work& prepare,
                           const Work& compute, bool write_back) {
  for (int64_t b : order)
    ZOFT_CHECK(b >= 0 && b < int64_t(blocks_.size()), "GPU streamer: no block {}", b);
  const int64_t n = int64_t(order.size());
  std::vector<int64_t> slot_of(order.size());
  int64_t uploaded = 0;
  auto upload_next = [&] {
    slot_of[size_t(uploaded)] = next_slot_;
    upload(order[size_t(uploaded)], slots_[size_t(next_slot_)]);
    next_slot_ = (next_slot_ + 1) % int64_t(slots_.size());
    ++uploaded;
  };
  for (int64_t j = 0; j < n; ++j) {
    if (uploaded == j) upload_next();  // prefetch 0, or the first block
    Slot& slot = slots_[size_t(slot_of[size_t(j)])];
    enqueue_compute(order[size_t(j)], slot, prepare, compute);
    if (write_back) this->write_back(order[size_t(j)], slot);
    // Read ahead after compute is enqueued: a disk read on this thread then overlaps with it.
    while (uploaded < n && uploaded <= j + prefetch_) upload_next();
  }
}

void GpuBlockStreamer::zo2_step(const std::vector<int64_t>& order, const Zo2Work& work) {
  Work passes = [&work](int64_t block, void* slot, Stream& s) {
    work.plus_pass(block, slot, s);
    work.flip(block, slot, s);
    work.minus_pass(block, slot, s);
    work.restore(block, slot, s);
  };
  run(order, work.update, passes, true);
}

void GpuBlockStreamer::upload(int64_t block, Slot& slot) {
  const StreamedBlock& b = blocks_[size_t(block)];
  Stream& up = *upload_;
  // The slot's previous block: its passes and its write-back read the slot.
  device_.wait(up, *slot.computed);
  device_.wait(up, *slot.written);
  if (b.home == Tier::Cpu) {
    device_.wait(up, *home_written_[size_t(block)]);  // its last image must be home first
    device_.copy_to_device(up, slot.memory, b.host, b.bytes);
  } else {
    complete_writes_of(block);  // the file must hold its last image before we read it
    Staging& staging = take_staging();
    file_->read(staging.memory, b.bytes, b.file_offset);
    device_.copy_to_device(up, slot.memory, staging.memory, b.bytes);
    device_.record(*staging.done, up);
    stats_.disk_read += b.bytes;
  }
  device_.record(*slot.uploaded, up);
  stats_.bytes_uploaded += b.bytes;
  stats_.uploads += 1;
}

void GpuBlockStreamer::enqueue_compute(int64_t block, Slot& slot, const Work& prepare,
                                       const Work& compute) {
  Stream& c = device_.compute_stream();
  device_.wait(c, *slot.uploaded);
  if (prepare) prepare(block, slot.memory, c);
  if (compute) compute(block, slot.memory, c);
  device_.record(*slot.computed, c);
}

void GpuBlockStreamer::write_back(int64_t block, Slot& slot) {
  const StreamedBlock& b = blocks_[size_t(block)];
  Stream& wb = *write_back_;
  device_.wait(wb, *slot.computed);
  if (b.home == Tier::Cpu) {
    device_.copy_to_host(wb, b.host, slot.memory, b.bytes);
    device_.record(*home_written_[size_t(block)], wb);
  } else {
    Staging& staging = take_staging();
    device_.copy_to_host(wb, staging.memory, slot.memory, b.bytes);
    device_.record(*staging.done, wb);
    staging.pending_write = block;  // pwritten when the buffer is next needed, or by flush()
  }
  device_.record(*slot.written, wb);
  stats_.bytes_written_back += b.bytes;
  stats_.write_backs += 1;
}

GpuBlockStreamer::Staging& GpuBlockStreamer::take_staging() {
  Staging& s = staging_[size_t(next_staging_)];
  next_staging_ = (next_staging_ + 1) % int64_t(staging_.size());
  device_.synchronize(*s.done);
  stats_.staging_waits += 1;
  complete_write(s);
  return s;
}

void GpuBlockStreamer::complete_write(Staging& staging) {
  if (staging.pending_write < 0) return;
  device_.synchronize(*staging.done);
  const StreamedBlock& b = blocks_[size_t(staging.pending_write)];
  file_->write(staging.memory, b.bytes, b.file_offset);
  stats_.disk_written += b.bytes;
  staging.pending_write = -1;
}

void GpuBlockStreamer::complete_writes_of(int64_t block) {
  for (Staging& s : staging_)
    if (s.pending_write == block) complete_write(s);
}

void GpuBlockStreamer::flush() {
  device_.synchronize(device_.compute_stream());
  device_.synchronize(*upload_);
  device_.synchronize(*write_back_);
  for (Staging& s : staging_) complete_write(s);
}

}  // namespace zoft::runtime
