// Internal to src/zo: two 16-counter-wide versions of Philox + Box-Muller, built from the same
// operations in the same order as the one-lane definition in philox_math.h: AVX-512 intrinsics,
// and plain loops that compilers vectorise for AVX2 / NEON. Include it only from files compiled
// with -ffp-contract=off (CMakeLists.txt), so that no multiply-add is ever fused and every
// version rounds alike.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__AVX512F__)
// GCC 12 warns about the deliberately undefined vectors inside its own intrinsics headers.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)  // a gcc-only warning
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

#include "zo/philox.h"
#include "zo/philox_math.h"

namespace zoft::zo::detail {

// The coefficient arrays of the vector paths, built from the scalars in philox_math.h (the lane
// functions log_lane / sincos_2pi_lane are there too).
constexpr int kLogTerms = 9;
constexpr float kLogQ[kLogTerms] = {kLogQ0, kLogQ1, kLogQ2, kLogQ3, kLogQ4,
                                    kLogQ5, kLogQ6, kLogQ7, kLogQ8};
constexpr int kSinTerms = 5, kCosTerms = 5;
constexpr float kSinP[kSinTerms] = {kSinP0, kSinP1, kSinP2, kSinP3, kSinP4};
constexpr float kCosP[kCosTerms] = {kCosP0, kCosP1, kCosP2, kCosP3, kCosP4};

}  // namespace zoft::zo::detail

namespace zoft::zo::portable {
// Internal linkage: the file is compiled into each per-instruction-set copy of perturb_cpu.cc
// (perturb_kernels.h), whose inline functions must not be merged (tools/check_isa_objects.py).
namespace {

// The ten rounds on 16 counters held word by word; GCC vectorises the lane loop only when the
// four words are separate restrict arrays.
inline void philox_rounds16(uint32_t* __restrict x0, uint32_t* __restrict x1,
                            uint32_t* __restrict x2, uint32_t* __restrict x3, uint64_t seed) {
  uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    for (int l = 0; l < 16; ++l) {
      uint64_t p0 = uint64_t(x0[l]) * kPhiloxM0, p1 = uint64_t(x2[l]) * kPhiloxM1;
      uint32_t a = uint32_t(p1 >> 32) ^ x1[l] ^ k0, b = uint32_t(p0 >> 32) ^ x3[l] ^ k1;
      x0[l] = a;
      x1[l] = uint32_t(p1);
      x2[l] = b;
      x3[l] = uint32_t(p0);
    }
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
}

// Philox4x32-10 of the 16 counters (q0 + l, c1, c2, c3); x[w][l] = word w of call l.
inline void philox16(uint32_t q0, uint32_t c1, uint32_t c2, uint32_t c3, uint64_t seed,
                     uint32_t x[4][16]) {
  for (int l = 0; l < 16; ++l) {
    x[0][l] = q0 + uint32_t(l);
    x[1][l] = c1;
    x[2][l] = c2;
    x[3][l] = c3;
  }
  philox_rounds16(x[0], x[1], x[2], x[3], seed);
}

// z[4 q0 .. 4 q0 + 64) of z(param_id, step, sample), in element order.
inline void normals64(uint64_t seed, uint32_t param_id, uint64_t step, uint32_t sample, uint64_t q0,
                      float out[64]) {
  uint32_t x[4][16];
  philox16(uint32_t(q0), param_id, uint32_t(step), sample, seed, x);
  for (int pair = 0; pair < 2; ++pair)
    for (int l = 0; l < 16; ++l) {
      float r = std::sqrt(detail::log_lane(uniform_from_bits(x[2 * pair][l])) * -2.0f);
      float sn, cs;
      detail::sincos_2pi_lane(uniform_from_bits(x[2 * pair + 1][l]), &sn, &cs);
      out[4 * l + 2 * pair] = r * cs;
      out[4 * l + 2 * pair + 1] = r * sn;
    }
}

// The 16-bit stochastic-rounding values R of elements [8 q0, 8 q0 + 128).
inline void rounding_bits128(uint64_t seed, uint32_t param_id, uint64_t rounding_step, uint64_t q0,
                             uint32_t out[128]) {
  Philox4 c = rounding_counter(q0, param_id, rounding_step);
  uint32_t x[4][16];
  philox16(c[0], c[1], c[2], c[3], seed, x);
  for (int l = 0; l < 16; ++l)
    for (int w = 0; w < 4; ++w) {
      out[8 * l + 2 * w] = x[w][l] & 0xffffu;
      out[8 * l + 2 * w + 1] = x[w][l] >> 16;
    }
}

}  // namespace
}  // namespace zoft::zo::portable

#if defined(__AVX512F__)
namespace zoft::zo::avx512 {
// Internal linkage: the file is compiled into each per-instruction-set copy of perturb_cpu.cc
// (perturb_kernels.h), whose inline functions must not be merged (tools/check_isa_objects.py).
namespace {

inline __m512i splat(uint32_t v) {
  return _mm512_set1_epi32(int(v));
}
inline __m512 splat(float v) {
  return _mm512_set1_ps(v);
}

// Philox4x32-10 of the 16 counters (q0 + l, c1, c2, c3), l = 0..15; x[w][l] = word w of call l.
// Two sets of 8 counters, each word in the low half of a 64-bit lane: one VPMULUDQ then gives a
// whole 64-bit product, and what collects in the upper halves never reaches a lower half (xor is
// bitwise, VPMULUDQ reads only low halves).
inline void philox16(uint32_t q0, uint32_t c1, uint32_t c2, uint32_t c3, uint64_t seed,
                     __m512i x[4]) {
  const __m512i m0 = splat(kPhiloxM0), m1 = splat(kPhiloxM1);
  __m512i s[2][4];
  for (int set = 0; set < 2; ++set) {
    s[set][0] = _mm512_add_epi64(_mm512_set1_epi64(q0 + 8u * set),
                                 _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7));
    s[set][1] = splat(c1);
    s[set][2] = splat(c2);
    s[set][3] = splat(c3);
  }
  uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    const __m512i key0 = splat(k0), key1 = splat(k1);
    for (__m512i* v : {s[0], s[1]}) {
      __m512i p0 = _mm512_mul_epu32(v[0], m0), p1 = _mm512_mul_epu32(v[2], m1);
      v[0] = _mm512_ternarylogic_epi32(_mm512_srli_epi64(p1, 32), v[1], key0, 0x96);  // a^b^c
      v[1] = p1;
      v[2] = _mm512_ternarylogic_epi32(_mm512_srli_epi64(p0, 32), v[3], key1, 0x96);
      v[3] = p0;
    }
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
  // Low halves of set 0 into lanes 0..7, of set 1 into lanes 8..15.
  const __m512i low_halves =
      _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  for (int w = 0; w < 4; ++w) x[w] = _mm512_permutex2var_epi32(s[0][w], low_halves, s[1][w]);
}

inline __m512 uniform(__m512i x) {
  __m512 m = _mm512_cvtepi32_ps(_mm512_srli_epi32(x, 9));
  return _mm512_add_ps(_mm512_mul_ps(m, splat(0x1p-23f)), splat(0x1p-24f));
}

template <int K>
inline __m512 horner(const float (&c)[K], __m512 x) {
  __m512 p = splat(c[K - 1]);
  for (int k = K - 2; k >= 0; --k) p = _mm512_add_ps(_mm512_mul_ps(p, x), splat(c[k]));
  return p;
}

inline __m512 log(__m512 u) {
  __m512i b = _mm512_castps_si512(u);
  __m512i e = _mm512_sub_epi32(_mm512_srli_epi32(b, 23), splat(127u));
  __m512i mb = _mm512_or_si512(_mm512_and_si512(b, splat(0x7fffffu)), splat(0x3f800000u));
  __mmask16 big = _mm512_cmpgt_epi32_mask(mb, splat(detail::kSqrt2Bits));
  mb = _mm512_mask_sub_epi32(mb, big, mb, splat(0x800000u));
  e = _mm512_mask_add_epi32(e, big, e, splat(1u));
  __m512 f = _mm512_sub_ps(_mm512_castsi512_ps(mb), splat(1.0f));
  __m512 p = _mm512_add_ps(f, _mm512_mul_ps(_mm512_mul_ps(f, f), horner(detail::kLogQ, f)));
  __m512 ef = _mm512_cvtepi32_ps(e);
  __m512 lo = _mm512_add_ps(_mm512_mul_ps(ef, splat(detail::kLn2Lo)), p);
  return _mm512_add_ps(_mm512_mul_ps(ef, splat(detail::kLn2Hi)), lo);
}

inline __m512 flip_sign(__m512 x, __mmask16 where) {
  __m512i bits = _mm512_castps_si512(x);
  return _mm512_castsi512_ps(_mm512_mask_xor_epi32(bits, where, bits, splat(0x80000000u)));
}

inline void sincos_2pi(__m512 u, __m512* sin_out, __m512* cos_out) {
  __m512 j = _mm512_roundscale_ps(_mm512_add_ps(_mm512_mul_ps(u, splat(4.0f)), splat(0.5f)),
                                  _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  __m512 t = _mm512_sub_ps(u, _mm512_mul_ps(j, splat(0.25f)));
  __m512 t2 = _mm512_mul_ps(t, t);
  __m512 s = _mm512_mul_ps(t, horner(detail::kSinP, t2));
  __m512 c = _mm512_add_ps(splat(1.0f), _mm512_mul_ps(t2, horner(detail::kCosP, t2)));
  __m512i q = _mm512_and_si512(_mm512_cvttps_epi32(j), splat(3u));
  __mmask16 odd = _mm512_test_epi32_mask(q, splat(1u));
  __m512 sn = _mm512_mask_blend_ps(odd, s, c), cs = _mm512_mask_blend_ps(odd, c, s);
  *sin_out = flip_sign(sn, _mm512_test_epi32_mask(q, splat(2u)));  // q=2,3
  *cos_out =
      flip_sign(cs, _mm512_test_epi32_mask(_mm512_add_epi32(q, splat(1u)), splat(2u)));  // 1,2
}

// v[w][l] = value w of counter l  ->  out[k] = elements [16k, 16k + 16) in element order
// (element 4l + w = v[w][l]).
inline void to_element_order(const __m512 v[4], __m512 out[4]) {
  // a: per 128-bit lane k, (v0[4k], v1[4k], v0[4k+1], v1[4k+1]); b the upper halves; same c, d.
  __m512 a = _mm512_unpacklo_ps(v[0], v[1]), b = _mm512_unpackhi_ps(v[0], v[1]);
  __m512 c = _mm512_unpacklo_ps(v[2], v[3]), d = _mm512_unpackhi_ps(v[2], v[3]);
  // Lane k of e / f / g / h holds counter 4k / 4k+1 / 4k+2 / 4k+3 (its 4 values).
  auto lo64 = [](__m512 x, __m512 y) {
    return _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(x), _mm512_castps_pd(y)));
  };
  auto hi64 = [](__m512 x, __m512 y) {
    return _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(x), _mm512_castps_pd(y)));
  };
  __m512 e = lo64(a, c), f = hi64(a, c), g = lo64(b, d), h = hi64(b, d);
  // 4x4 transpose of 128-bit lanes.
  __m512 p = _mm512_shuffle_f32x4(e, f, 0x44), r = _mm512_shuffle_f32x4(e, f, 0xEE);
  __m512 q = _mm512_shuffle_f32x4(g, h, 0x44), s = _mm512_shuffle_f32x4(g, h, 0xEE);
  out[0] = _mm512_shuffle_f32x4(p, q, 0x88);
  out[1] = _mm512_shuffle_f32x4(p, q, 0xDD);
  out[2] = _mm512_shuffle_f32x4(r, s, 0x88);
  out[3] = _mm512_shuffle_f32x4(r, s, 0xDD);
}

// z[4 q0 .. 4 q0 + 64) of z(param_id, step, sample), in element order.
inline void normals64(uint64_t seed, uint32_t param_id, uint64_t step, uint32_t sample, uint64_t q0,
                      __m512 out[4]) {
  __m512i x[4];
  philox16(uint32_t(q0), param_id, uint32_t(step), sample, seed, x);
  __m512 v[4];
  for (int pair = 0; pair < 2; ++pair) {
    __m512 r = _mm512_sqrt_ps(_mm512_mul_ps(log(uniform(x[2 * pair])), splat(-2.0f)));
    __m512 sn, cs;
    sincos_2pi(uniform(x[2 * pair + 1]), &sn, &cs);
    v[2 * pair] = _mm512_mul_ps(r, cs);
    v[2 * pair + 1] = _mm512_mul_ps(r, sn);
  }
  to_element_order(v, out);
}

// The 16-bit stochastic-rounding values R of elements [8 q0, 8 q0 + 128) as 32-bit lanes:
// out[k] = elements 8 q0 + 16k .. + 16. Element 8q + h takes half-word h of call q's output
// (words in order, low half first), which is how the 16 calls' words, put in element order,
// already lie in memory: widening their 16-bit halves is all that is left.
inline void rounding_bits128(uint64_t seed, uint32_t param_id, uint64_t rounding_step, uint64_t q0,
                             __m512i out[8]) {
  Philox4 c = rounding_counter(q0, param_id, rounding_step);
  __m512i x[4];
  philox16(c[0], c[1], c[2], c[3], seed, x);
  __m512 v[4], o[4];
  for (int w = 0; w < 4; ++w) v[w] = _mm512_castsi512_ps(x[w]);
  to_element_order(v, o);
  for (int k = 0; k < 4; ++k) {
    __m512i bits = _mm512_castps_si512(o[k]);
    out[2 * k] = _mm512_cvtepu16_epi32(_mm512_castsi512_si256(bits));
    out[2 * k + 1] = _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(bits, 1));
  }
}

}  // namespace
}  // namespace zoft::zo::avx512
#endif
