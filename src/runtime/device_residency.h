// The GPU tier of placement.max_memory gpu=B: which blocks of a decoder live in device memory and
// which pass through a few device slots from their home in host RAM, as a BlockResidency
// (model/decoder.h) that every forward and the ZO2 stepper already call.
//
//   resident   blocks 0 (embeddings) and L+1 (final norm, LM head; a tied table is the last
//              block's), then layers in order while they fit: copied into device memory once;
//   streamed   the other layers: their parameters stay where they are in host memory (their
//              home) and are copied into one of `prefetch + 1` slots of the largest streamed
//              layer's size; up to `prefetch` blocks ahead are uploaded on an upload stream while
//              the current one computes; a block released as modified (ZO: updated) is written
//              back to its home on a write-back stream, and its slot is refilled only after that
//              copy (events, runtime/streams.h). So in a ZO2 step each streamed block crosses the
//              bus once each way.
//
// Device memory in use never exceeds B: resident blocks + slots are what the plan adds up, and
// the plan refuses (one line) a budget that cannot hold blocks 0 and L+1 and the slots.
// Bytes move unchanged, so results are bit-identical to the resident run.
//
// Compute reads the parameters where bind_block points them. On the simulated device
// (runtime/sim_device.h: device memory is host memory; tests, and ZOFT_SIM_DEVICE) the CPU ops
// compute on the slots directly; on a GPU the model must be placed there too
// (Decoder::to_device), which is not wired yet (docs/offload.md, "What remains").
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/decoder.h"
#include "model/parameters.h"
#include "runtime/streams.h"

namespace zoft::runtime {

struct ResidencyPlan {
  std::vector<bool> streamed;         // per block
  std::vector<uint64_t> block_bytes;  // per block, each parameter 256-byte aligned
  int64_t slots = 0;                  // 0 when nothing streams
  uint64_t slot_bytes = 0;            // the largest streamed block
  uint64_t resident_bytes = 0;        // of the resident blocks
  uint64_t device_bytes() const { return resident_bytes + uint64_t(slots) * slot_bytes; }
  uint64_t bytes_moved_per_step = 0;  // ZO2: each streamed block up and back once
  std::string text() const;           // what the plan printout says
};

// Plans `model` within `budget` bytes of device memory with `prefetch` blocks read ahead.
// Throws Error (one line) for gpu=0 and for a budget below blocks 0 and L+1 plus the slots.
ResidencyPlan plan_device_residency(Decoder& model, uint64_t budget, int64_t prefetch);

struct ResidencyStats {
  uint64_t bytes_uploaded = 0, bytes_written_back = 0;
  int64_t uploads = 0, write_backs = 0;
  double upload_wait_seconds = 0;  // the host waiting in acquire for a block's upload to land
};

class DeviceResidency final : public BlockResidency {
 public:
  // Places the model's parameters as planned and attaches to it (Decoder::set_residency). For
  // training the model must be trainable first (make_trainable): write-backs go to the homes.
  // `device` must outlive this object.
  static std::unique_ptr<DeviceResidency> attach(Decoder& model, Device& device, uint64_t budget,
                                                 int64_t prefetch);
  // Writes every block back to its home (resident blocks too), points the model at the homes
  // again and detaches: afterwards the model is an ordinary host model holding the latest
  // weights.
  ~DeviceResidency() override;
  DeviceResidency(const DeviceResidency&) = delete;
  DeviceResidency& operator=(const DeviceResidency&) = delete;

  void acquire(int64_t block) override;
  void release(int64_t block, bool modified) override;
  bool held(int64_t block) const override { return held_[size_t(block)]; }

  const ResidencyPlan& plan() const { return plan_; }
  ResidencyStats stats() const { return stats_; }
  // Where each parameter lives between uses (host memory), as list_parameters gave it at attach.
  const std::vector<ParameterRef>& homes() const { return homes_; }
  // Brings every home up to date (pending write-backs landed, modified resident blocks copied
  // back), e.g. before a checkpoint reads the homes; between forwards.
  void sync_homes();

 private:
  struct Slot {
    void* memory = nullptr;
    int64_t block = -1;   // the block it holds or is being filled with
    bool in_use = false;  // acquired, or uploaded ahead and not yet acquired
    std::unique_ptr<Event> uploaded, written;
  };
  DeviceResidency(Decoder& model, Device& device, ResidencyPlan plan);
  // The offsets of each parameter of `block` inside its device image (256-byte aligned).
  std::vector<uint64_t> offsets(int64_t block) const;
  void copy_in(int64_t block, void* image, Stream& stream);
  void copy_out(int64_t block, const void* image, Stream& stream);
  void bind(int64_t block, void* image);  // image null: the homes
  int64_t slot_of(int64_t block) const;
  // Enqueues the upload of `block` into a free slot; false when every slot is busy.
  bool upload(int64_t block);
  int64_t next_streamed(int64_t after) const;

  Decoder& model_;
  Device& device_;
  ResidencyPlan plan_;
  std::vector<ParameterRef> homes_;  // list_parameters at attach: where each one lives in RAM
  std::vector<void*> resident_;      // device image per resident block (null when streamed)
  std::vector<Slot> slots_;
  std::unique_ptr<Stream> upload_stream_, write_back_stream_;
  std::unique_ptr<Event> computed_;  // the compute stream's work before a write-back
  std::vector<bool> held_;
  std::vector<bool> dirty_;  // resident blocks modified since attach
  int64_t prefetch_ = 0;
  ResidencyStats stats_;
};

}  // namespace zoft::runtime
