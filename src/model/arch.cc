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

static void check_positive(const std::string& path, const char* what, int64_t value) {
  if (value <= 0) fail("{}: {} must be positive, got {}", path, what, value);
}

static void validate(const std::string& path, const ModelConfig& c) {
  check_positive(path, "vocab_size", c.vocab_size);
  check_positive(path, "hidden_size", c.hidden_size);
  check_positive(path, "number of layers", c.num_layers);
  check_positive(path, "number of attention heads", c.num_heads);
  check_positive(path, "number of key/value heads", c.num_kv_heads);
  check_positive(path, "head_dim", c.head_dim);
  check_positive(path, "intermediate size", c.intermediate_size);
  check_positive(path, "max_position_embeddings", c.max_positions);
  if (c.num_layers > 100000 || c.hidden_size > (1 << 20) || c.vocab_size > (1 << 24))
    fail("{}: sizes are implausible (layers {}, hidden {}, vocab {})", path, c.num_layers,
         c.hidden_size, c.vocab_size);
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
