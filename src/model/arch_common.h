// Config readers shared by the architecture tables.
#pragma once

#include <string>

#include "model/config.h"
#include "model/json_config.h"

namespace zoft {

// HF hidden_act / hidden_activation name -> Activation; throws naming the file for others.
Activation parse_activation(const JsonConfig& json, const std::string& name);

// Reads one RoPE description: either a rope_parameters-style object (rope_type, rope_theta,
// factor, ...) or the older top-level rope_theta + rope_scaling pair.
RopeConfig read_rope_object(const JsonConfig& object, double default_theta);
RopeConfig read_rope(const JsonConfig& json, double default_theta);

// bos_token_id / eos_token_id / pad_token_id (eos may be a list: the first is taken).
void read_special_ids(const JsonConfig& json, ModelConfig& config);

// Fills layer_window from "layer_types" (sliding_attention / full_attention) or, failing that,
// from sliding_window_pattern; windows are config "sliding_window".
void read_layer_windows(const JsonConfig& json, ModelConfig& config, bool uses_sliding_window);

}  // namespace zoft
