// Training checkpoints: OUTPUT/checkpoint-<step>/ is an HF model directory (config.json,
// model.safetensors, tokenizer files) plus trainer_state.json and recipe.yaml. A checkpoint is
// written into a temporary directory and renamed into place only when complete, so a crash at
// any point leaves either the previous set of checkpoints or the new one, never half of one.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/parameters.h"

namespace zoft {

struct CheckpointContents {
  const std::vector<ParameterRef>* parameters = nullptr;
  std::string config_json;  // the model's config.json text ("dtype" is set to the storage)
  // A LoRA run's checkpoint is a PEFT adapter directory: adapter_model.safetensors and
  // adapter_config.json (config_json then holds the latter's text).
  std::string weights_file = "model.safetensors";
  std::string config_file = "config.json";
  std::vector<std::pair<std::string, std::string>>
      extra_files;               // name -> bytes (tokenizer.json...)
  nlohmann::json trainer_state;  // must hold "step"
  std::string recipe_yaml;
  // Offload (runtime/): writes model.safetensors instead of io's write_safetensors, with the
  // same bytes, streaming the offloaded tensors from disk. Null: write_safetensors.
  std::function<void(const std::string& path, const std::vector<NamedTensor>& tensors,
                     const std::map<std::string, std::string>& metadata)>
      write_weights;
  // Writes further files (a training method's optimizer state) into the checkpoint's
  // directory before it is renamed into place. Null: none.
  std::function<void(const std::string& dir)> write_extra;
};

// Writes OUTPUT/checkpoint-<step> atomically and returns its path.
std::string save_checkpoint(const std::string& output_dir, int64_t step,
                            const CheckpointContents& contents);

// Newest complete checkpoint in output_dir (one with trainer_state.json), if any.
std::optional<std::string> latest_checkpoint(const std::string& output_dir);

// Deletes the oldest complete checkpoints so that at most `keep` remain (0 = keep all);
// `protect` (e.g. the best one) is never deleted.
void prune_checkpoints(const std::string& output_dir, int64_t keep, const std::string& protect);

}  // namespace zoft
