// Philox4x32-10 and the standard-normal perturbation z built from it (docs/zo-rng.md).
//
// A counter-based RNG makes every random number a pure function of (key, counter): element i of
// z is computed where it is needed, by whichever thread, device or rank owns i, and is the same
// everywhere (DESIGN decision 1). The float math (log, sincos, Box-Muller) uses only float32
// +, -, * and sqrt in a fixed order, so CPU, CUDA and NumPy agree bit for bit.
#pragma once

#include <array>
#include <cstdint>

#include "zo/philox_math.h"

namespace zoft::zo {

using Philox4 = std::array<uint32_t, 4>;

// Salmon et al. 2011 (philox_rounds in philox_math.h, shared with the CUDA kernel).
inline Philox4 philox4x32_10(Philox4 c, uint32_t k0, uint32_t k1) {
  philox_rounds(c.data(), k0, k1);
  return c;
}

inline Philox4 philox4x32_10(Philox4 c, uint64_t seed) {
  return philox4x32_10(c, uint32_t(seed), uint32_t(seed >> 32));
}

// z samples stay below the rounding stream's counter bit (philox_math.h).
constexpr uint32_t kMaxSamples = kRoundingStreamBit;
// floor(i / 4) must fit the 32-bit counter word c0.
constexpr int64_t kMaxElements = int64_t(1) << 34;

// The counter of the Philox call that serves elements [4q, 4q + 4) of z(param_id, step, sample).
inline Philox4 z_counter(uint64_t q, uint32_t param_id, uint64_t step, uint32_t sample) {
  return {uint32_t(q), param_id, uint32_t(step), sample};
}

// The counter of the stochastic-rounding bits of elements [8q, 8q + 8): element 8q + h takes
// 16-bit half h of the output (words in order, low half first).
inline Philox4 rounding_counter(uint64_t q, uint32_t param_id, uint64_t rounding_step) {
  return {uint32_t(q), param_id, uint32_t(rounding_step),
          kRoundingStreamBit | (uint32_t(rounding_step >> 32) & 0x7fffffffu)};
}

// Half-word h (0..7) of a rounding-stream output.
inline uint32_t rounding_half(const Philox4& x, int h) {
  return rounding_half(x.data(), h);
}

// Natural log of u in [2^-24, 1) to < 1 ulp, float32 +, -, * only (docs/zo-rng.md section 4).
float zo_log(float u);

// sin(2 pi u) and cos(2 pi u) for u in (0, 1) to < 2 ulp, float32 +, -, * only.
void zo_sincos_2pi(float u, float* sin_out, float* cos_out);

// Box-Muller on the Philox output x: {r1 cos, r1 sin, r2 cos, r2 sin} with r1 = sqrt(-2 log
// U(x0)), angle 2 pi U(x1), and likewise (x2, x3).
void normals_from_bits(const Philox4& x, float out[4]);

// z[4q .. 4q + 4) of z(param_id, step, sample) under seed.
void normal_block(uint64_t seed, uint32_t param_id, uint64_t step, uint32_t sample, uint64_t q,
                  float out[4]);

// out[k] = z[begin + k] for k < count; single-threaded (tests, references, small tensors).
void fill_normal(float* out, int64_t begin, int64_t count, uint64_t seed, uint32_t param_id,
                 uint64_t step, uint32_t sample);

}  // namespace zoft::zo
