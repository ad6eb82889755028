#include "model/rope.h"

#include <cmath>

namespace zoft {

// Llama-3 scaling: long wavelengths are divided by `factor`, short ones kept, and the band in
// between blended smoothly (HF _compute_llama3_parameters).
static float llama3_scale(float inv_freq, const RopeConfig& rope) {
  const float pi = 3.14159265358979323846f;
  float old_context = float(rope.original_max_positions);
  float low_wavelen = old_context / float(rope.low_freq_factor);
  float high_wavelen = old_context / float(rope.high_freq_factor);
  float wavelen = 2 * pi / inv_freq;
  if (wavelen > low_wavelen) return inv_freq / float(rope.factor);
  if (wavelen < high_wavelen) return inv_freq;
  float smooth = (old_context / wavelen - float(rope.low_freq_factor)) /
                 float(rope.high_freq_factor - rope.low_freq_factor);
  return (1 - smooth) * inv_freq / float(rope.factor) + smooth * inv_freq;
}

RopeTable make_rope_table(const RopeConfig& rope, int64_t head_dim) {
  RopeTable table;
  table.rotary_dim = int64_t(std::llround(double(head_dim) * rope.partial_rotary_factor));
  float dim = float(table.rotary_dim);
  for (int64_t i = 0; i < table.rotary_dim / 2; ++i) {
    float inv = 1.0f / std::pow(float(rope.theta), float(2 * i) / dim);
    if (rope.type == "linear") inv /= float(rope.factor);
    if (rope.type == "llama3") inv = llama3_scale(inv, rope);
    table.inv_freq.push_back(inv);
  }
  return table;
}

}  // namespace zoft
