#include "model/arch.h"

#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "model/arch_tables.h"
#include "model/json_config.h"

namespace zoft {

static const ArchTable* const kArchTables[] = {&kLlamaArch, &kQwen3Arch, &kGemma3Arch, &kOptArch,
                                               &kGpt2Arch};

std::string supported_model_types() {
  std::string out;
  for (const ArchTable* arch : kArchTables)
    for (const char* type : arch->model_types) out += (out.empty() ? "" : ", ") + std::string(type);
  return out;
}

const ArchTable& find_arch(const std::string& model_type) {
  for (const ArchTable* arch : kArchTables)
    for (const char* type : arch->model_types)
      if (model_type == type) return *arch;
  fail("unknown model_type '{}': supported are {}", model_type, supported_model_types());
}

std::string layer_tensor_name(const char* pattern, int64_t layer) {
  std::string name = pattern;
  size_t at = name.find("{}");
  if (at != std::string::npos) name.replace(at, 2, std::to_string(layer));
  return name;
}

static void check_size(const std::string& path, const char* what, int64_t value, int64_t cap) {
  if (value <= 0 || value > cap)
    fail("{}: {} must be between 1 and {}, got {}", path, what, cap, value);
}

void check_config_sizes(const std::string& path, const ModelConfig& c) {
  check_size(path, "vocab_size", c.vocab_size, int64_t(1) << 24);
  check_size(path, "hidden_size", c.hidden_size, int64_t(1) << 20);
  check_size(path, "the number of layers (num_hidden_layers)", c.num_layers, kMaxLayers);
  check_size(path, "the number of attention heads", c.num_heads, int64_t(1) << 14);
  check_size(path, "the number of key/value heads", c.num_kv_heads, int64_t(1) << 14);
  check_size(path, "head_dim", c.head_dim, int64_t(1) << 14);
  check_size(path, "the intermediate size", c.intermediate_size, int64_t(1) << 22);
  check_size(path, "max_position_embeddings", c.max_positions, int64_t(1) << 24);
}

static void validate(const std::string& path, const ModelConfig& c) {
  check_config_sizes(path, c);
  if (c.num_heads % c.num_kv_heads != 0)
    fail("{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", path,
         c.num_heads, c.num_kv_heads);
  if (c.positions == PositionKind::Learned && c.q_dim() != c.hidden_size)
    fail("{}: hidden_size {} is not divisible by the {} attention heads", path, c.hidden_size,
         c.num_heads);
  if (c.positions == PositionKind::Rope) {
    for (const RopeConfig* rope : {&c.rope, &c.rope_local}) {
      int64_t rotary = int64_t(std::llround(double(c.head_dim) * rope->partial_rotary_factor));
      if (rotary <= 0 || rotary > c.head_dim || rotary % 2 != 0)
        fail("{}: rotary dimension {} must be even and within head_dim {}", path, rotary,
             c.head_dim);
    }
  }
  if (!(c.norm_eps > 0) || !std::isfinite(c.norm_eps))
    fail("{}: the norm epsilon must be a positive number", path);
}

LoadedConfig read_model_config(const std::string& model_dir) {
  std::string path = model_dir;
  if (std::filesystem::is_directory(model_dir)) path = model_dir + "/config.json";
  if (!std::filesystem::exists(path))
    fail("{}: not found (expected a Hugging Face model directory with config.json)", path);
  return read_model_config_json(JsonConfig::load(path));
}

LoadedConfig read_model_config_json(const JsonConfig& json) {
  LoadedConfig loaded;
  loaded.config.model_type = json.get_string("model_type");
  try {
    loaded.arch = &find_arch(loaded.config.model_type);
  } catch (const Error& e) {
    fail("{}: {}", json.path(), e.what());
  }
  loaded.arch->read_config(json, loaded.config);
  if (loaded.config.attention_scale == 0.0f)
    loaded.config.attention_scale = float(1.0 / std::sqrt(double(loaded.config.head_dim)));
  validate(json.path(), loaded.config);
  return loaded;
}

}  // namespace zoft
