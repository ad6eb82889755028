// Rotary frequencies, computed as HF's rope initialisation functions do (in float32).
#pragma once

#include <vector>

#include "model/config.h"

namespace zoft {

struct RopeTable {
  int64_t rotary_dim = 0;       // even, <= head_dim
  std::vector<float> inv_freq;  // rotary_dim / 2 entries
  float attention_scaling = 1.0f;
};

RopeTable make_rope_table(const RopeConfig& rope, int64_t head_dim);

}  // namespace zoft
