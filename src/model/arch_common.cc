#include "model/arch_common.h"

#include "core/error.h"
#include "model/arch.h"

namespace zoft {

Activation parse_activation(const JsonConfig& json, const std::string& name) {
  if (name == "relu") return Activation::ReLU;
  if (name == "gelu") return Activation::GeluErf;
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast")
    return Activation::GeluTanh;
  if (name == "silu" || name == "swish") return Activation::SiLU;
  fail("{}: activation '{}' is not supported (relu, gelu, gelu_new, gelu_pytorch_tanh, silu)",
       json.path(), name);
}

RopeConfig read_rope_object(const JsonConfig& object, double default_theta) {
  RopeConfig rope;
  rope.type = object.get_string("rope_type", object.get_string("type", "default"));
  rope.theta = object.get_float("rope_theta", default_theta);
  rope.factor = object.get_float("factor", 1.0);
  rope.low_freq_factor = object.get_float("low_freq_factor", 1.0);
  rope.high_freq_factor = object.get_float("high_freq_factor", 4.0);
  rope.original_max_positions = object.get_int("original_max_position_embeddings", 8192);
  rope.partial_rotary_factor = object.get_float("partial_rotary_factor", 1.0);
  if (rope.type != "default" && rope.type != "linear" && rope.type != "llama3")
    fail("{}: rope type '{}' is not supported (default, linear, llama3)", object.path(), rope.type);
  if (rope.theta <= 0 || rope.factor <= 0)
    fail("{}: rope_theta and rope factor must be positive", object.path());
  return rope;
}

RopeConfig read_rope(const JsonConfig& json, double default_theta) {
  double theta = json.get_float("rope_theta", default_theta);
  RopeConfig rope;
  if (auto params = json.get_object("rope_parameters")) {
    rope = read_rope_object(*params, theta);
  } else if (auto scaling = json.get_object("rope_scaling")) {
    rope = read_rope_object(*scaling, theta);
    rope.theta = theta;
  } else {
    rope.theta = theta;
  }
  rope.partial_rotary_factor = json.get_float("partial_rotary_factor", rope.partial_rotary_factor);
  return rope;
}

void read_special_ids(const JsonConfig& json, ModelConfig& config) {
  config.bos_id = int32_t(json.get_int("bos_token_id", -1));
  config.pad_id = int32_t(json.get_int("pad_token_id", -1));
  // eos_token_id may be an int or a list; JsonConfig only reads ints, so tolerate the list form.
  try {
    config.eos_id = int32_t(json.get_int("eos_token_id", -1));
  } catch (const Error&) {
    config.eos_id = -1;
  }
}

void read_layer_windows(const JsonConfig& json, ModelConfig& config, bool uses_sliding_window) {
  check_config_sizes(json.path(), config);  // before num_layers sizes anything
  config.layer_window.assign(size_t(config.num_layers), 0);
  if (!uses_sliding_window || !json.has("sliding_window")) return;
  int64_t window = json.get_int("sliding_window");
  if (window <= 0) fail("{}: sliding_window must be positive, got {}", json.path(), window);
  std::vector<std::string> types = json.get_string_list("layer_types");
  if (!types.empty()) {
    if (int64_t(types.size()) != config.num_layers)
      fail("{}: layer_types has {} entries but num_hidden_layers is {}", json.path(), types.size(),
           config.num_layers);
    for (size_t i = 0; i < types.size(); ++i) {
      if (types[i] == "sliding_attention")
        config.layer_window[i] = window;
      else if (types[i] != "full_attention")
        fail("{}: layer_types[{}] is '{}': expected sliding_attention or full_attention",
             json.path(), i, types[i]);
    }
    return;
  }
  int64_t pattern = json.get_int("sliding_window_pattern", 0);
  for (int64_t i = 0; i < config.num_layers; ++i)
    config.layer_window[size_t(i)] = (pattern > 0 && (i + 1) % pattern == 0) ? 0 : window;
}

}  // namespace zoft
