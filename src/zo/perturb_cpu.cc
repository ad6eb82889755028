// The CPU loops of apply_z_terms and fill_normal (perturb_kernels.h), compiled once per
// instruction set: AVX-512 intrinsics in the avx512 copy, plain loops over 16 Philox counters
// (vectorised by the compiler) in the base copy. Compiled with -ffp-contract=off
// (CMakeLists.txt) so that scalar, vector, CUDA and NumPy round after every multiply and add
// alike.
#include <algorithm>
#include <cstring>

#include "core/thread_pool.h"
#include "zo/perturb_kernels.h"
#include "zo/philox.h"
#include "zo/philox_simd.h"

#if !defined(ZOFT_ZO_ISA)
#error "perturb_cpu.cc is compiled once per instruction set (CMakeLists.txt, zoft_zo_<copy>)"
#endif

namespace zoft::zo::detail::ZOFT_ZO_ISA {
// Internal linkage, for the reason in tools/check_isa_objects.py.
namespace {

// Elements per parallel work item: a multiple of the vector paths' groups (64, 128) and big enough
// (64 KiB of f32) that the pool's hand-off cost is negligible.
constexpr int64_t kChunk = 16 * 1024;

// sum_j scale_j z_j of the 4 elements of Philox block q, in term order from +0.
void block_sum(const ZUpdate& u, uint64_t q, float acc[4]) {
  for (int k = 0; k < 4; ++k) acc[k] = 0.0f;
  for (int j = 0; j < u.n_terms; ++j) {
    float z[4];
    normal_block(u.seed, u.param_id, u.terms[j].step, u.terms[j].sample, q, z);
    for (int k = 0; k < 4; ++k) acc[k] = acc[k] + z[k] * u.terms[j].scale;
  }
}

float decayed(const ZUpdate& u, float x) {
  return u.decay == 1.0f ? x : x * u.decay;
}

uint32_t bits_of(float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  return b;
}

// Elements [begin, end) of the parameter, p = &theta[begin], one Philox block at a time: heads,
// tails and non-AVX-512 builds.
void scalar_f32(const ZUpdate& u, float* p, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end;) {
    float acc[4];
    block_sum(u, uint64_t(i) / 4, acc);
    for (int64_t k = i % 4; k < 4 && i < end; ++k, ++i)
      p[i - begin] = decayed(u, p[i - begin]) + acc[k];
  }
}

void scalar_bf16(const ZUpdate& u, uint16_t* p, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end;) {
    float acc[4];
    block_sum(u, uint64_t(i) / 4, acc);
    Philox4 r =
        philox4x32_10(rounding_counter(uint64_t(i) / 8, u.param_id, u.rounding_step), u.seed);
    for (int64_t k = i % 4; k < 4 && i < end; ++k, ++i) {
      float y = decayed(u, bf16_to_f32(p[i - begin])) + acc[k];
      p[i - begin] = bf16_round_stochastic(bits_of(y), rounding_half(r, int(i % 8)));
    }
  }
}

#if defined(__AVX512F__)
using zo::avx512::splat;

// acc[k] = elements [4 q0 + 16k, +16) of sum_j scale_j z_j.
void group_sum(const ZUpdate& u, uint64_t q0, __m512 acc[4]) {
  for (int k = 0; k < 4; ++k) acc[k] = _mm512_setzero_ps();
  for (int j = 0; j < u.n_terms; ++j) {
    __m512 z[4];
    zo::avx512::normals64(u.seed, u.param_id, u.terms[j].step, u.terms[j].sample, q0, z);
    __m512 scale = splat(u.terms[j].scale);
    for (int k = 0; k < 4; ++k) acc[k] = _mm512_add_ps(acc[k], _mm512_mul_ps(z[k], scale));
  }
}

__m512 decayed(const ZUpdate& u, __m512 x) {
  return u.decay == 1.0f ? x : _mm512_mul_ps(x, splat(u.decay));
}

// 64 elements starting at p = &theta[4 q0].
void group_f32(const ZUpdate& u, float* p, uint64_t q0) {
  __m512 acc[4];
  group_sum(u, q0, acc);
  for (int k = 0; k < 4; ++k) {
    __m512 x = _mm512_loadu_ps(p + 16 * k);
    _mm512_storeu_ps(p + 16 * k, _mm512_add_ps(decayed(u, x), acc[k]));
  }
}

// 128 elements starting at p = &theta[8 q0]: one group of rounding bits, two groups of z.
void group_bf16(const ZUpdate& u, uint16_t* p, uint64_t q0) {
  __m512i r[8];
  zo::avx512::rounding_bits128(u.seed, u.param_id, u.rounding_step, q0, r);
  for (int half = 0; half < 2; ++half) {
    __m512 acc[4];
    group_sum(u, 2 * q0 + 16 * half, acc);
    for (int k = 0; k < 4; ++k) {
      uint16_t* at = p + 64 * half + 16 * k;
      __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(at));
      __m512 x = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
      __m512 y = _mm512_add_ps(decayed(u, x), acc[k]);
      __m512i b = _mm512_castps_si512(y);
      __mmask16 nan = _mm512_cmp_ps_mask(y, y, _CMP_UNORD_Q);
      __m512i sum = _mm512_add_epi32(b, r[4 * half + k]);
      __m512i out = _mm512_srli_epi32(_mm512_mask_blend_epi32(nan, sum, b), 16);
      out = _mm512_mask_or_epi32(out, nan, out, splat(0x40u));  // keep NaN quiet, as f32_to_bf16
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(at), _mm512_cvtepi32_epi16(out));
    }
  }
}
#else
// The same groups from plain loops over 16 counters, for the compiler to vectorise.
void group_sum(const ZUpdate& u, uint64_t q0, float acc[64]) {
  for (int e = 0; e < 64; ++e) acc[e] = 0.0f;
  for (int j = 0; j < u.n_terms; ++j) {
    float z[64];
    zo::portable::normals64(u.seed, u.param_id, u.terms[j].step, u.terms[j].sample, q0, z);
    for (int e = 0; e < 64; ++e) acc[e] = acc[e] + z[e] * u.terms[j].scale;
  }
}

void group_f32(const ZUpdate& u, float* p, uint64_t q0) {
  float acc[64];
  group_sum(u, q0, acc);
  if (u.decay == 1.0f)  // two loops: a branch inside would stop the vectoriser
    for (int e = 0; e < 64; ++e) p[e] = p[e] + acc[e];
  else
    for (int e = 0; e < 64; ++e) p[e] = p[e] * u.decay + acc[e];
}

void group_bf16(const ZUpdate& u, uint16_t* p, uint64_t q0) {
  uint32_t r[128];
  zo::portable::rounding_bits128(u.seed, u.param_id, u.rounding_step, q0, r);
  for (int half = 0; half < 2; ++half) {
    float acc[64];
    group_sum(u, 2 * q0 + 16 * half, acc);
    for (int e = 0; e < 64; ++e) {
      float y = decayed(u, bf16_to_f32(p[64 * half + e])) + acc[e];
      p[64 * half + e] = bf16_round_stochastic(bits_of(y), r[64 * half + e]);
    }
  }
}
#endif

// Elements [begin, end) of the parameter, p = &theta[begin]: scalar up to a group boundary,
// vector groups, scalar tail. A group is 64 elements (16 Philox calls of z) for f32 and 128 for
// bf16 (16 calls of rounding bits).
template <class T>
void update_range(const ZUpdate& u, T* p, int64_t begin, int64_t end) {
  constexpr bool f32 = sizeof(T) == 4;
  constexpr int64_t align = f32 ? 4 : 8, group = f32 ? 64 : 128;
  auto scalar = [&](int64_t b, int64_t e) {
    if constexpr (f32)
      scalar_f32(u, p + (b - begin), b, e);
    else
      scalar_bf16(u, p + (b - begin), b, e);
  };
  int64_t i = std::min(end, (begin + align - 1) / align * align);
  scalar(begin, i);
  for (; i + group <= end; i += group) {
    if constexpr (f32)
      group_f32(u, p + (i - begin), uint64_t(i) / 4);
    else
      group_bf16(u, p + (i - begin), uint64_t(i) / 8);
  }
  scalar(i, end);
}

// p holds elements [offset, offset + n) of the parameter.
template <class T>
void update_tensor(const ZUpdate& u, T* p, int64_t offset, int64_t n) {
  int64_t chunks = (n + kChunk - 1) / kChunk;
  auto body = [&](int64_t cb, int64_t ce) {
    int64_t lb = cb * kChunk, le = std::min(n, ce * kChunk);
    update_range(u, p + lb, offset + lb, offset + le);
  };
  // A single chunk is not worth waking the pool for.
  if (chunks <= 1)
    body(0, chunks);
  else
    parallel_for(chunks, body);
}

// fill_normal's loop: whole groups of 16 Philox calls (64 elements) through a vector path.
void fill_normal_range(float* out, int64_t begin, int64_t count, uint64_t seed, uint32_t param_id,
                       uint64_t step, uint32_t sample) {
  int64_t i = begin, end = begin + count;
  auto scalar_until = [&](int64_t stop) {
    while (i < stop) {
      float z[4];
      normal_block(seed, param_id, step, sample, uint64_t(i) / 4, z);
      for (int64_t k = i % 4; k < 4 && i < stop; ++k, ++i) out[i - begin] = z[k];
    }
  };
  scalar_until(std::min(end, (i + 3) / 4 * 4));
  for (; i + 64 <= end; i += 64) {
    float* dst = out + (i - begin);
#if defined(__AVX512F__)
    __m512 z[4];
    zo::avx512::normals64(seed, param_id, step, sample, uint64_t(i) / 4, z);
    for (int k = 0; k < 4; ++k) _mm512_storeu_ps(dst + 16 * k, z[k]);
#else
    zo::portable::normals64(seed, param_id, step, sample, uint64_t(i) / 4, dst);
#endif
  }
  scalar_until(end);
}

}  // namespace

const ZKernels kZKernels = {
    .update_f32 = update_tensor<float>,
    .update_bf16 = update_tensor<uint16_t>,
    .fill_normal = fill_normal_range,
};

}  // namespace zoft::zo::detail::ZOFT_ZO_ISA
