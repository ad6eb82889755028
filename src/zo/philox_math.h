// The one definition of docs/zo-rng.md for a single lane: Philox4x32-10, the uniforms, log and
// sincos(2 pi u) in float32 +, -, *, Box-Muller, and stochastic rounding to bf16. Written once
// and compiled twice: as C++ by the CPU kernels (src/zo/*.cc) and as CUDA by the GPU kernel
// (src/zo/cuda/perturb.cu), so that CPU and GPU z agree bit for bit by construction.
//
// The float functions round after every multiply and every add. Call them only from files
// compiled without contraction: g++ -ffp-contract=off, nvcc -fmad=false (CMakeLists.txt). A
// fused multiply-add rounds once instead of twice and breaks bit-equality.
#pragma once

#include <cstdint>
#if !defined(__CUDA_ARCH__)
#include <cmath>
#include <cstring>
#endif

#if defined(__CUDACC__)
#define ZOFT_HD __host__ __device__
#else
#define ZOFT_HD
#endif

namespace zoft::zo {

constexpr uint32_t kPhiloxM0 = 0xD2511F53u, kPhiloxM1 = 0xCD9E8D57u;  // round multipliers
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u, kPhiloxW1 = 0xBB67AE85u;  // Weyl key increments

// Counter c3 of the stochastic-rounding stream has its top bit set; z samples stay below it.
constexpr uint32_t kRoundingStreamBit = 0x80000000u;

// Salmon et al. 2011: ten rounds of two 32x32->64 multiplies, key bumped between rounds.
// c is the counter on entry and the output on return.
ZOFT_HD inline void philox_rounds(uint32_t c[4], uint32_t k0, uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = uint64_t(kPhiloxM0) * c[0], p1 = uint64_t(kPhiloxM1) * c[2];
    uint32_t x0 = uint32_t(p1 >> 32) ^ c[1] ^ k0, x2 = uint32_t(p0 >> 32) ^ c[3] ^ k1;
    c[0] = x0;
    c[1] = uint32_t(p1);
    c[2] = x2;
    c[3] = uint32_t(p0);
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
}

// Top 23 bits -> (m + 0.5) / 2^23: exact, never 0 or 1.
ZOFT_HD inline float uniform_from_bits(uint32_t x) {
  return float(x >> 9) * 0x1p-23f + 0x1p-24f;
}

// f32 -> bf16 rounding up in magnitude with probability (discarded bits) / 2^16; random16 is a
// uniform value in [0, 2^16). NaN stays NaN.
ZOFT_HD inline uint16_t bf16_round_stochastic(uint32_t f32_bits, uint32_t random16) {
  if ((f32_bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((f32_bits >> 16) | 0x40);
  return uint16_t((f32_bits + random16) >> 16);
}

// Half-word h (0..7) of a rounding-stream output (words in order, low half first).
ZOFT_HD inline uint32_t rounding_half(const uint32_t x[4], int h) {
  return (x[h / 2] >> (16 * (h % 2))) & 0xffffu;
}

namespace detail {

// log(1 + f) ~ f + f^2 Q(f) on [sqrt(1/2) - 1, sqrt(2) - 1]. Scalars, not an array: CUDA device
// code may read namespace-scope constexpr scalars but not index a host array.
constexpr float kLogQ0 = -0.49999988079071045f, kLogQ1 = 0.33333325386047363f,
                kLogQ2 = -0.25001582503318787f, kLogQ3 = 0.20001976191997528f,
                kLogQ4 = -0.16609077155590057f, kLogQ5 = 0.14181777834892273f,
                kLogQ6 = -0.13242976367473602f, kLogQ7 = 0.1290469467639923f,
                kLogQ8 = -0.07622110843658447f;
// ln 2 = kLn2Hi + kLn2Lo; kLn2Hi has 16 significant bits so e * kLn2Hi is exact for |e| <= 2^8.
constexpr float kLn2Hi = 0.693145751953125f, kLn2Lo = 1.428606765330187e-06f;
// sin(2 pi t) ~ t P(t^2) and cos(2 pi t) ~ 1 + t^2 P(t^2) on |t| <= 1/8.
constexpr float kSinP0 = 6.2831854820251465f, kSinP1 = -41.34170150756836f,
                kSinP2 = 81.6052017211914f, kSinP3 = -76.69786834716797f,
                kSinP4 = 41.47296142578125f;
constexpr float kCosP0 = -19.739208221435547f, kCosP1 = 64.93939208984375f,
                kCosP2 = -85.4567642211914f, kCosP3 = 60.23826217651367f,
                kCosP4 = -26.05941390991211f;
// m > sqrt(2) (as float32 bits): halve the mantissa so that f = m - 1 stays small.
constexpr uint32_t kSqrt2Bits = 0x3fb504f3u;

ZOFT_HD inline uint32_t bits_of(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  uint32_t b;
  std::memcpy(&b, &x, 4);
  return b;
#endif
}

ZOFT_HD inline float float_of(uint32_t b) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(b);
#else
  float x;
  std::memcpy(&x, &b, 4);
  return x;
#endif
}

// Correctly rounded on both sides (CUDA's sqrtf is only when -prec-sqrt=true; __fsqrt_rn always).
ZOFT_HD inline float sqrt_rn(float x) {
#if defined(__CUDA_ARCH__)
  return __fsqrt_rn(x);
#else
  return std::sqrt(x);
#endif
}

// horner(LOG_Q, f): p = c[K-1]; p = p * f + c[k] for k = K-2 .. 0.
ZOFT_HD inline float log_q(float f) {
  float p = kLogQ8;
  p = p * f + kLogQ7;
  p = p * f + kLogQ6;
  p = p * f + kLogQ5;
  p = p * f + kLogQ4;
  p = p * f + kLogQ3;
  p = p * f + kLogQ2;
  p = p * f + kLogQ1;
  p = p * f + kLogQ0;
  return p;
}

ZOFT_HD inline float sin_p(float t2) {
  float p = kSinP4;
  p = p * t2 + kSinP3;
  p = p * t2 + kSinP2;
  p = p * t2 + kSinP1;
  p = p * t2 + kSinP0;
  return p;
}

ZOFT_HD inline float cos_p(float t2) {
  float p = kCosP4;
  p = p * t2 + kCosP3;
  p = p * t2 + kCosP2;
  p = p * t2 + kCosP1;
  p = p * t2 + kCosP0;
  return p;
}

// u = 2^e m with m in [sqrt(1/2), sqrt(2)), so log u = e ln2 + log(1 + f), f = m - 1 small;
// the exponent part is added last so that it costs no accuracy when e = 0.
ZOFT_HD inline float log_lane(float u) {
  uint32_t b = bits_of(u);
  int32_t e = int32_t(b >> 23) - 127;
  uint32_t mb = (b & 0x7fffffu) | 0x3f800000u;
  bool big = mb > kSqrt2Bits;
  mb = big ? mb - 0x800000u : mb;
  e = big ? e + 1 : e;
  float f = float_of(mb) - 1.0f;
  float p = f + (f * f) * log_q(f);
  float ef = float(e);
  return ef * kLn2Hi + (ef * kLn2Lo + p);
}

// 2 pi u = 2 pi t + j pi / 2 with |t| <= 1/8; both reduction steps are exact for the u that
// uniform_from_bits makes, so all error is in the two short polynomials. j = floor(4u + 0.5)
// (truncation is floor here: the argument is positive).
ZOFT_HD inline void sincos_2pi_lane(float u, float* sin_out, float* cos_out) {
  int32_t j = int32_t(u * 4.0f + 0.5f);
  float t = u - float(j) * 0.25f;
  float t2 = t * t;
  float s = t * sin_p(t2);
  float c = 1.0f + t2 * cos_p(t2);
  int32_t q = j & 3;
  float sn = (q & 1) ? c : s, cs = (q & 1) ? s : c;
  *sin_out = (q >= 2) ? -sn : sn;
  *cos_out = (q == 1 || q == 2) ? -cs : cs;
}

// Box-Muller on one Philox output x: {r1 cos, r1 sin, r2 cos, r2 sin} with r1 = sqrt(-2 log
// U(x0)), angle 2 pi U(x1), and likewise (x2, x3).
ZOFT_HD inline void normals_lane(const uint32_t x[4], float out[4]) {
  for (int pair = 0; pair < 2; ++pair) {
    float r = sqrt_rn(log_lane(uniform_from_bits(x[2 * pair])) * -2.0f);
    float sn, cs;
    sincos_2pi_lane(uniform_from_bits(x[2 * pair + 1]), &sn, &cs);
    out[2 * pair] = r * cs;
    out[2 * pair + 1] = r * sn;
  }
}

}  // namespace detail
}  // namespace zoft::zo
