// Scalar z (the definition the vector path and the NumPy reference must match) and fill_normal.
// Compiled with -ffp-contract=off (CMakeLists.txt): a fused multiply-add would round once
// instead of twice and break bit-equality with CUDA and NumPy.
#include "zo/philox.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "zo/philox_simd.h"

namespace zoft::zo {

static uint32_t bits_of(float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  return b;
}

static float float_of(uint32_t b) {
  float x;
  std::memcpy(&x, &b, 4);
  return x;
}

template <int K>
static float horner(const float (&c)[K], float x) {
  float p = c[K - 1];
  for (int k = K - 2; k >= 0; --k) p = p * x + c[k];
  return p;
}

// u = 2^e m with m in [sqrt(1/2), sqrt(2)), so log u = e ln2 + log(1 + f), f = m - 1 small;
// the exponent part is added last so that it costs no accuracy when e = 0.
float zo_log(float u) {
  uint32_t b = bits_of(u);
  int32_t e = int32_t(b >> 23) - 127;
  uint32_t mb = (b & 0x7fffffu) | 0x3f800000u;
  if (mb > detail::kSqrt2Bits) {
    mb -= 0x800000u;
    e += 1;
  }
  float f = float_of(mb) - 1.0f;
  float p = f + (f * f) * horner(detail::kLogQ, f);
  float ef = float(e);
  return ef * detail::kLn2Hi + (ef * detail::kLn2Lo + p);
}

// 2 pi u = 2 pi t + j pi / 2 with |t| <= 1/8; both reduction steps are exact for the u that
// uniform_from_bits makes, so all error is in the two short polynomials.
void zo_sincos_2pi(float u, float* sin_out, float* cos_out) {
  float j = std::floor(u * 4.0f + 0.5f);
  float t = u - j * 0.25f;
  float t2 = t * t;
  float s = t * horner(detail::kSinP, t2);
  float c = 1.0f + t2 * horner(detail::kCosP, t2);
  int q = int(j) & 3;
  float sn = (q & 1) ? c : s, cs = (q & 1) ? s : c;
  *sin_out = (q >= 2) ? -sn : sn;
  *cos_out = (q == 1 || q == 2) ? -cs : cs;
}

void normals_from_bits(const Philox4& x, float out[4]) {
  for (int pair = 0; pair < 2; ++pair) {
    float r = std::sqrt(zo_log(uniform_from_bits(x[2 * pair])) * -2.0f);
    float sn, cs;
    zo_sincos_2pi(uniform_from_bits(x[2 * pair + 1]), &sn, &cs);
    out[2 * pair] = r * cs;
    out[2 * pair + 1] = r * sn;
  }
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
  int64_t i = begin, end = begin + count;
  auto scalar_until = [&](int64_t stop) {
    while (i < stop) {
      float z[4];
      normal_block(seed, param_id, step, sample, uint64_t(i) / 4, z);
      for (int64_t k = i % 4; k < 4 && i < stop; ++k, ++i) out[i - begin] = z[k];
    }
  };
#if defined(__AVX512F__)
  // Whole groups of 16 Philox calls (64 elements) go through the vector path.
  scalar_until(std::min(end, (i + 3) / 4 * 4));
  for (; i + 64 <= end; i += 64) {
    __m512 z[4];
    avx512::normals64(seed, param_id, step, sample, uint64_t(i) / 4, z);
    for (int k = 0; k < 4; ++k) _mm512_storeu_ps(out + (i - begin) + 16 * k, z[k]);
  }
#endif
  scalar_until(end);
}

}  // namespace zoft::zo
