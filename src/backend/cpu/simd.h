// Internal to backend/cpu: AVX-512 helpers and vectorised exp / tanh / erf with ~1e-7 relative
// error, so that the elementwise ops stay within the f32 tolerance of their double references.
// Everything here exists only where the file is compiled for AVX-512 (the avx512 copy of the
// per-instruction-set ops, op_kernels.h, and the GEMM kernels); each op keeps a scalar loop for
// the base copy.
#pragma once

#include <cstdint>

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

namespace zoft::cpu::simd {
// Internal linkage, for the reason in tools/check_isa_objects.py: without inlining (the sanitizer
// build) these become weak symbols, and an AVX-512 copy could be linked into generic code.
namespace {

#if defined(__AVX512F__)

// Lane mask for the first n lanes (n may be <= 0 or >= 16).
inline __mmask16 first_lanes(int64_t n) {
  return n >= 16 ? __mmask16(0xffff) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

// Lanes [lo, hi] of a 16-lane vector (empty when hi < lo).
inline __mmask16 lane_range(int64_t lo, int64_t hi) {
  lo = lo < 0 ? 0 : lo;
  hi = hi > 15 ? 15 : hi;
  if (hi < lo) return 0;
  return __mmask16((0xffffu >> (15 - hi)) & (0xffffu << lo));
}

inline __m512 splat(float v) {
  return _mm512_set1_ps(v);
}

// e^x: x = n ln2 + r with |r| <= ln2/2, e^r from its degree-7 Taylor polynomial (truncation
// 5e-9 relative), times 2^n by VSCALEF, which also gives 0 / inf past the f32 range.
// The clamp keeps r finite for +-inf (and lets NaN through: max/min return their 2nd operand).
inline __m512 exp(__m512 x) {
  x = _mm512_min_ps(splat(89.0f), _mm512_max_ps(splat(-104.0f), x));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, splat(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, splat(0.693145751953125f), x);  // ln2 split in hi + lo
  r = _mm512_fnmadd_ps(n, splat(1.428606765330187e-06f), r);
  __m512 p = splat(1.0f / 5040);
  p = _mm512_fmadd_ps(p, r, splat(1.0f / 720));
  p = _mm512_fmadd_ps(p, r, splat(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, splat(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, splat(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, splat(0.5f));
  p = _mm512_fmadd_ps(p, r, splat(1.0f));
  p = _mm512_fmadd_ps(p, r, splat(1.0f));
  return _mm512_scalef_ps(p, n);
}

// 1 / (1 + e^-x), exact division so that silu keeps its relative accuracy.
inline __m512 sigmoid(__m512 x) {
  return _mm512_div_ps(splat(1.0f), _mm512_add_ps(splat(1.0f), exp(_mm512_sub_ps(splat(0.0f), x))));
}

// tanh: odd Taylor polynomial below |x| = 0.2 (where (1-t)/(1+t) would lose relative accuracy
// to cancellation), (1 - e^-2|x|) / (1 + e^-2|x|) with the sign put back above.
inline __m512 tanh(__m512 x) {
  __m512 ax = _mm512_abs_ps(x);
  __m512 t = exp(_mm512_mul_ps(ax, splat(-2.0f)));
  __m512 big = _mm512_div_ps(_mm512_sub_ps(splat(1.0f), t), _mm512_add_ps(splat(1.0f), t));
  big = _mm512_or_ps(big, _mm512_and_ps(x, splat(-0.0f)));  // copy the sign of x
  __m512 x2 = _mm512_mul_ps(x, x);
  __m512 p = splat(62.0f / 2835);
  p = _mm512_fmadd_ps(p, x2, splat(-17.0f / 315));
  p = _mm512_fmadd_ps(p, x2, splat(2.0f / 15));
  p = _mm512_fmadd_ps(p, x2, splat(-1.0f / 3));
  __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(p, x2), x, x);
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(ax, splat(0.2f), _CMP_LT_OQ), big, small);
}

// erfc(z) for z >= 0.75: e^(-z^2) t P(t), t = 1 / (1 + z/2), P a degree-8 least-squares fit of
// erfc(z) e^(z^2) / t on [0.75, 10] (relative error 1.5e-7 in f32). e^(-z^2) multiplies any
// relative error of z^2 by z^2, so the caller passes z^2 as an exact sum hi + lo.
inline __m512 erfc_tail(__m512 z, __m512 z2_hi, __m512 z2_lo) {
  __m512 t = _mm512_div_ps(splat(1.0f), _mm512_fmadd_ps(z, splat(0.5f), splat(1.0f)));
  __m512 p = splat(-4.882140405e-02f);
  p = _mm512_fmadd_ps(p, t, splat(2.540118190e-01f));
  p = _mm512_fmadd_ps(p, t, splat(-4.511154874e-01f));
  p = _mm512_fmadd_ps(p, t, splat(2.573736123e-01f));
  p = _mm512_fmadd_ps(p, t, splat(-2.147818466e-02f));
  p = _mm512_fmadd_ps(p, t, splat(2.028788927e-01f));
  p = _mm512_fmadd_ps(p, t, splat(2.427105100e-01f));
  p = _mm512_fmadd_ps(p, t, splat(2.824537190e-01f));
  p = _mm512_fmadd_ps(p, t, splat(2.820813864e-01f));
  __m512 e =
      _mm512_mul_ps(exp(_mm512_sub_ps(splat(0.0f), z2_hi)), _mm512_sub_ps(splat(1.0f), z2_lo));
  return _mm512_mul_ps(e, _mm512_mul_ps(t, p));
}

// erf(x) for |x| < 0.75 from its Taylor series, x * sum (-1)^n 2/sqrt(pi) x^2n / (n! (2n+1)),
// 9 terms (truncation < 1e-9 relative).
inline __m512 erf_small(__m512 x) {
  __m512 x2 = _mm512_mul_ps(x, x);
  __m512 p = splat(1.646211437e-06f);
  p = _mm512_fmadd_ps(p, x2, splat(-1.492565036e-05f));
  p = _mm512_fmadd_ps(p, x2, splat(1.205533298e-04f));
  p = _mm512_fmadd_ps(p, x2, splat(-8.548327023e-04f));
  p = _mm512_fmadd_ps(p, x2, splat(5.223977625e-03f));
  p = _mm512_fmadd_ps(p, x2, splat(-2.686617065e-02f));
  p = _mm512_fmadd_ps(p, x2, splat(1.128379167e-01f));
  p = _mm512_fmadd_ps(p, x2, splat(-3.761263890e-01f));
  p = _mm512_fmadd_ps(p, x2, splat(1.128379167e+00f));
  return _mm512_mul_ps(p, x);
}

// 1 + erf(x / sqrt 2), the GELU factor, accurate in relative terms also where it is tiny
// (x -> -inf: erfc(-x / sqrt 2)). Taking x rather than x / sqrt 2 lets (x / sqrt 2)^2 = x^2 / 2
// be formed exactly (x*x as hi + lo by FMA, halving is exact).
inline __m512 one_plus_erf_scaled(__m512 x) {
  __m512 z = _mm512_mul_ps(x, splat(0.70710678118654752f));
  __m512 az = _mm512_abs_ps(z);
  __m512 xc = _mm512_min_ps(splat(20.0f), _mm512_max_ps(splat(-20.0f), x));  // erfc(14) ~ 0
  __m512 hi = _mm512_mul_ps(xc, xc);
  __m512 lo = _mm512_fmsub_ps(xc, xc, hi);  // xc*xc - hi, exactly
  __m512 tail = erfc_tail(_mm512_max_ps(az, splat(0.75f)), _mm512_mul_ps(hi, splat(0.5f)),
                          _mm512_mul_ps(lo, splat(0.5f)));
  __m512 big = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, splat(0.0f), _CMP_LT_OQ),
                                    _mm512_sub_ps(splat(2.0f), tail), tail);
  __m512 small = _mm512_add_ps(splat(1.0f), erf_small(z));
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(az, splat(0.75f), _CMP_LT_OQ), big, small);
}

// In-register transpose of a 16x16 matrix of 32-bit elements: r[i] lane j -> r[j] lane i.
inline void transpose16x16(__m512i r[16]) {
  __m512i a[16], b[16];
  // After this stage each 128-bit lane of a[2i], a[2i+1] interleaves rows 2i and 2i+1.
  for (int i = 0; i < 8; ++i) {
    a[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    a[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  // b[4g + c], 128-bit lane L = column 4L + c of rows 4g .. 4g+3.
  for (int g = 0; g < 4; ++g) {
    b[4 * g + 0] = _mm512_unpacklo_epi64(a[4 * g], a[4 * g + 2]);
    b[4 * g + 1] = _mm512_unpackhi_epi64(a[4 * g], a[4 * g + 2]);
    b[4 * g + 2] = _mm512_unpacklo_epi64(a[4 * g + 1], a[4 * g + 3]);
    b[4 * g + 3] = _mm512_unpackhi_epi64(a[4 * g + 1], a[4 * g + 3]);
  }
  // Gather lane L of b[c], b[4+c], b[8+c], b[12+c] into column 4L + c.
  for (int c = 0; c < 4; ++c) {
    __m512i e01 = _mm512_shuffle_i32x4(b[c], b[4 + c], _MM_SHUFFLE(1, 0, 1, 0));
    __m512i e23 = _mm512_shuffle_i32x4(b[c], b[4 + c], _MM_SHUFFLE(3, 2, 3, 2));
    __m512i f01 = _mm512_shuffle_i32x4(b[8 + c], b[12 + c], _MM_SHUFFLE(1, 0, 1, 0));
    __m512i f23 = _mm512_shuffle_i32x4(b[8 + c], b[12 + c], _MM_SHUFFLE(3, 2, 3, 2));
    r[c] = _mm512_shuffle_i32x4(e01, f01, _MM_SHUFFLE(2, 0, 2, 0));
    r[4 + c] = _mm512_shuffle_i32x4(e01, f01, _MM_SHUFFLE(3, 1, 3, 1));
    r[8 + c] = _mm512_shuffle_i32x4(e23, f23, _MM_SHUFFLE(2, 0, 2, 0));
    r[12 + c] = _mm512_shuffle_i32x4(e23, f23, _MM_SHUFFLE(3, 1, 3, 1));
  }
}

// Horizontal sum / max of one vector.
inline float reduce_add(__m512 v) {
  return _mm512_reduce_add_ps(v);
}
inline float reduce_max(__m512 v) {
  return _mm512_reduce_max_ps(v);
}

#endif  // __AVX512F__

}  // namespace
}  // namespace zoft::cpu::simd
