// Scalar z (the definition the vector path and the NumPy reference must match) and fill_normal.
// Compiled with -ffp-contract=off (CMakeLists.txt): a fused multiply-add would round once
// instead of twice and break bit-equality with CUDA and NumPy.
#include "zo/philox.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "zo/perturb_kernels.h"
#include "zo/philox_simd.h"

namespace zoft::zo {

float zo_log(float u) {
  return detail::log_lane(u);
}

void zo_sincos_2pi(float u, float* sin_out, float* cos_out) {
  detail::sincos_2pi_lane(u, sin_out, cos_out);
}

void normals_from_bits(const Philox4& x, float out[4]) {
  detail::normals_lane(x.data(), out);
}

void normal_block(uint64_t seed, uint32_t param_id, uint64_t step, uint32_t sample, uint64_t q,
                  float out[4]) {
  normals_from_bits(philox4x32_10(z_counter(q, param_id, step, sample), seed), out);
}

void fill_normal(float* out, int64_t begin, int64_t count, uint64_t seed, uint32_t param_id,
                 uint64_t step, uint32_t sample) {
  ZOFT_CHECK(begin >= 0 && count >= 0 && begin + count <= kMaxElements,
             "fill_normal: range [{}, {}) outside [0, 2^34)", begin, begin + count);
  ZOFT_CHECK(sample < kMaxSamples, "fill_normal: sample id {} >= 2^31", sample);
  detail::z_kernels().fill_normal(out, begin, count, seed, param_id, step, sample);
}

}  // namespace zoft::zo
