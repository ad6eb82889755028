// Architecture tables (llama.cpp style): a new architecture is a table of HF tensor names and a
// config reader that fills ModelConfig flags, not a new code path.
#pragma once

#include <string>
#include <vector>

#include "model/config.h"

namespace zoft {

class JsonConfig;  // model/json_config.h

// HF tensor names of each role, "{}" = layer index. Names are module prefixes: the loader appends
// ".weight" / ".bias". nullptr = the architecture has no such tensor.
struct ArchTensorNames {
  const char* embed_tokens;
  const char* embed_positions;
  const char* final_norm;
  const char* lm_head;
  const char* attn_norm;
  const char* q_proj;
  const char* k_proj;
  const char* v_proj;
  const char* qkv_proj;  // fused q|k|v (GPT-2 c_attn); used when q_proj is nullptr
  const char* o_proj;
  const char* q_norm;
  const char* k_norm;
  const char* post_attn_norm;  // sandwich norm after attention (Gemma)
  const char* ffn_norm;
  const char* gate_proj;
  const char* up_proj;  // also fc1 of a non-gated MLP
  const char* down_proj;
  const char* post_ffn_norm;
};

struct ArchTable {
  const char* name;                      // e.g. "llama"
  std::vector<const char*> model_types;  // config.json model_type values served by this table
  ArchTensorNames tensors;
  bool weights_are_kn;  // Conv1D layout [in, out] (GPT-2)
  void (*read_config)(const JsonConfig& json, ModelConfig& config);
};

// The table for a config.json model_type; throws Error listing the supported ones.
const ArchTable& find_arch(const std::string& model_type);
std::string supported_model_types();

// Reads config.json of a model directory into ModelConfig, validated (positive sizes, heads
// dividing hidden, etc.); errors name the file and the key.
struct LoadedConfig {
  const ArchTable* arch;
  ModelConfig config;
};
LoadedConfig read_model_config(const std::string& model_dir);
// The same from a config already in memory (e.g. made from a GGUF file's metadata).
LoadedConfig read_model_config_json(const JsonConfig& json);

// Checks the sizes of a config before anything is sized by them (the per-layer tables): each
// positive and within a cap far above any real model (layers 10000, hidden 2^20, vocab 2^24,
// heads 2^14, head_dim 2^14, intermediate 2^22, positions 2^24). `origin` names the file.
void check_config_sizes(const std::string& origin, const ModelConfig& config);
constexpr int64_t kMaxLayers = 10000;

// Expands "{}" in a table name with the layer index.
std::string layer_tensor_name(const char* pattern, int64_t layer);

}  // namespace zoft
