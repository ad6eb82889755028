// Will a training run fit in memory? Checked before the first step, so that a too large batch
// fails at once with one line instead of growing until the kernel kills the process.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "dist/communicator.h"
#include "model/config.h"
#include "model/decoder.h"
#include "train/recipe.h"
#include "train/train_data.h"

namespace zoft {

// Bytes a training step needs on one rank, as doubles: a huge batch must not overflow.
struct MemoryEstimate {
  double weights = 0;      // resident weights (trainable copies)
  double activations = 0;  // runtime::activation_bytes of this rank's forwards
  double batch = 0;        // the global batch's ids, mask, targets and gathered losses
  double total() const { return weights + activations + batch; }
};

// rank_rows: rows this rank forwards per step (its examples x candidates); global_rows: the
// whole batch's; seq: tokens per row; forwards: forward passes in flight (zo_forwards_per_step).
MemoryEstimate estimate_training_memory(const ModelConfig& config, double weight_bytes,
                                        int64_t rank_rows, int64_t global_rows, int64_t seq,
                                        int forwards);

struct AvailableMemory {
  uint64_t bytes = 0;
  std::string source;  // "MemAvailable" or "the cgroup limit"
};

// MemAvailable of /proc/meminfo, or what the process's cgroup still allows if that is less;
// nullopt when neither can be read (then nothing is checked).
std::optional<AvailableMemory> available_memory();

// The "MemAvailable:" value of a /proc/meminfo text in bytes, or nullopt.
std::optional<uint64_t> parse_mem_available(const std::string& meminfo);

// Throws Error (one line: the estimate, what is available, what to lower) when the estimate
// exceeds what is available. `source` names the recipe; `ranks_here`: ranks sharing this node.
void check_training_memory(const MemoryEstimate& estimate, const AvailableMemory& available,
                           int ranks_here, const std::string& source);

// Before the first step: the weights, what the method keeps beside them and one step's
// activations must fit in what was available when the run started (measured before the model
// was loaded). A first-order method keeps gradients and optimizer moments (and an f32 master of
// bf16 weights), and every layer's activations for the backward unless it checkpoints them.
// Nothing is checked without `available`.
void check_recipe_memory(const Recipe& r, Decoder& model, const TrainData& data,
                         const dist::Communicator& comm,
                         const std::optional<AvailableMemory>& available);

}  // namespace zoft
