// A model's vital statistics without loading its weights: config, checkpoint header, memory.
#pragma once

#include <cstdint>
#include <string>

#include "model/arch.h"

namespace zoft {

struct ModelSummary {
  std::string path;
  std::string arch;
  ModelConfig config;
  int64_t parameters = 0;        // distinct float parameters in the checkpoint
  int64_t layer_parameters = 0;  // one decoder layer
  int64_t embedding_parameters = 0;
  uint64_t checkpoint_bytes = 0;
  std::string checkpoint_dtypes;    // e.g. "bf16" or "f32+bf16"
  uint64_t kv_bytes_per_token = 0;  // f32 keys + values, all layers
};

// Throws, as loading would, when the checkpoint disagrees with the config (a missing tensor, a
// shape the config does not imply): a summary of a model that cannot load would mislead.
ModelSummary summarize_model(const std::string& model_dir);

}  // namespace zoft
