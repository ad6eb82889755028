// Offloaded execution of a loaded decoder within a RAM budget: plans the placement, writes the
// streamed blocks into the offload file, releases their memory, and attaches a BlockExecutor to
// the model (Decoder::set_residency), so that every forward and the ZO2 stepper stream them.
//
// Memory (cpu=B): B covers the weights in RAM, i.e. the resident blocks and the slots. Outside
// it: activations and scratch (estimated in the plan), the process itself (code, libraries,
// tokenizer, data), and, while the model is attached, the largest resident tensor once more (it
// is copied out of the checkpoint's mmap, whose pages are then dropped).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/safetensors.h"
#include "model/decoder.h"
#include "model/parameters.h"
#include "runtime/executor.h"
#include "runtime/offload_file.h"
#include "runtime/plan.h"

namespace zoft::runtime {

struct OffloadOptions {
  std::string max_memory;   // "cpu=20GiB[,gpu=8GiB]"; empty: everything resident, no offload
  std::string offload_dir;  // required when the plan streams from disk
  int64_t prefetch = 2;     // blocks read ahead
  bool trainable = false;   // training: resident blocks become writable copies (make_trainable)
  bool keep_file = false;   // leave the offload file in offload_dir at exit
  uint64_t activation_bytes = 0;  // reported with the plan (see activation_bytes())
  bool print_plan = true;         // to stderr
};

class Offload {
 public:
  // Plans `model` (just loaded from `model_path`) within the budget. Returns null, after
  // printing the plan, when every block is resident: the resident path is then untouched.
  static std::unique_ptr<Offload> attach(Decoder& model, const std::string& model_path,
                                         const OffloadOptions& options);
  // Completes queued writes and detaches from the model; the model's streamed blocks then
  // point at freed memory: destroy the model, or do not use it, afterwards.
  ~Offload();

  const Plan& plan() const { return plan_; }
  const std::string& plan_text() const { return plan_text_; }
  double disk_read_mbps() const { return read_mbps_; }
  double disk_write_mbps() const { return write_mbps_; }
  ExecutorStats stats() const { return executor_->stats(); }
  bool streamed(int64_t block) const { return layout_.streamed[size_t(block)]; }
  // Waits until the offload file holds every block as last released.
  void flush() { executor_->flush(); }

  // A drop-in for io's write_safetensors, giving the same file byte for byte: the tensors of
  // streamed blocks (found by name) are copied from the offload file, never held in RAM.
  void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                         const std::map<std::string, std::string>& metadata);
  // The current bytes of parameter p, wherever it lives (tests, tools).
  std::vector<uint8_t> parameter_bytes(const ParameterRef& p);

 private:
  Offload(Decoder& model) : model_(model) {}

  Decoder& model_;
  Plan plan_;
  std::string plan_text_;
  BlockLayout layout_;
  std::unordered_map<std::string, uint32_t> streamed_ids_;  // HF name -> parameter id
  double read_mbps_ = 0, write_mbps_ = 0;
  void* unbound_ = nullptr;  // read-only zero mapping of slot_bytes
  size_t unbound_bytes_ = 0;
  std::unique_ptr<OffloadFile> file_;
  std::unique_ptr<BlockExecutor> executor_;
};

// Parameter bytes of each block when resident (trainable: as make_trainable will store them),
// each tensor 64-byte aligned: what the planner weighs against the budget.
std::vector<uint64_t> block_bytes(Decoder& model, bool trainable);

// Activations and scratch, in bytes, of `forwards` forward passes in flight over `rows` tokens
// (2 x samples for a ZO2 step, 1 for evaluation), `loss_rows` of which are scored.
uint64_t activation_bytes(const ModelConfig& config, int64_t rows, int forwards, int64_t loss_rows);

}  // namespace zoft::runtime
