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

// The whole file; one clear line when it cannot be opened.
std::string read_file(const std::string& path);

// config.json of the trained model: the source's, with the storage dtype recorded.
std::string checkpoint_config(const std::string& model_dir, DType dtype);

// A crash between the two renames of save_checkpoint leaves ".old-checkpoint-N" without
// "checkpoint-N": put it back. Temporary directories of unfinished saves are removed.
void recover_checkpoints(const std::string& output_dir);

// Tokenizer files of the model, read now: pruning may delete the checkpoint a run resumed from.
// Every file the tokenizer may load from, as it is (compressed or not), so that a checkpoint
// loads as a model directory, for resuming and for generate.
std::vector<std::pair<std::string, std::string>> read_tokenizer_files(const std::string& dir);

}  // namespace zoft
