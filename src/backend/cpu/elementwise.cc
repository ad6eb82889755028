// Elementwise ops: add_inplace, activation, gated_activation, softcap, rope.
// Each activation has a scalar form (reference semantics, the base copy) and an AVX-512
// form built from simd.h; loops run whole vectors and finish with one masked vector.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/op_kernels.h"
#include "backend/cpu/parallel.h"
#include "backend/cpu/simd.h"

#if !defined(ZOFT_OPS_ISA)
#error "elementwise.cc is compiled once per instruction set (CMakeLists.txt, zoft_ops_<copy>)"
#endif

namespace zoft::cpu::detail::ZOFT_OPS_ISA {
// Internal linkage, for the reason in tools/check_isa_objects.py.
namespace {

// Flat loops are cut in chunks of this many elements for the pool.
constexpr int64_t kChunk = 8192;

static void for_chunks(int64_t n, const std::function<void(int64_t, int64_t)>& body) {
  int64_t chunks = (n + kChunk - 1) / kChunk;
  parallel_items(chunks, kChunk,
                 [&](int64_t c0, int64_t c1) { body(c0 * kChunk, std::min(n, c1 * kChunk)); });
}

// ---- scalar forms ---------------------------------------------------------------------------

static inline float relu(float x) {
  return x > 0.0f ? x : 0.0f;
}
// 0.5 x (1 + erf(x / sqrt 2)) = 0.5 x erfc(-x / sqrt 2): erfc keeps the negative tail accurate.
static inline float gelu_erf(float x) {
  return 0.5f * x * std::erfc(-x * 0.70710678118654752f);
}
// 0.5 x (1 + tanh u) = x sigmoid(2u): no cancellation when tanh u -> -1.
static inline float gelu_tanh(float x) {
  float u = 0.79788456080286536f * (x + 0.044715f * x * x * x);
  return x / (1.0f + std::exp(-2.0f * u));
}
static inline float silu(float x) {
  return x / (1.0f + std::exp(-x));
}

template <Activation kind>
static float act(float x) {
  if constexpr (kind == Activation::ReLU) return relu(x);
  if constexpr (kind == Activation::GeluErf) return gelu_erf(x);
  if constexpr (kind == Activation::GeluTanh) return gelu_tanh(x);
  if constexpr (kind == Activation::SiLU) return silu(x);
}

// ---- vector forms ---------------------------------------------------------------------------

#if defined(__AVX512F__)
template <Activation kind>
static __m512 act(__m512 x) {
  using namespace simd;
  if constexpr (kind == Activation::ReLU) return _mm512_max_ps(x, _mm512_setzero_ps());
  if constexpr (kind == Activation::GeluErf)
    return _mm512_mul_ps(_mm512_mul_ps(splat(0.5f), x), one_plus_erf_scaled(x));
  if constexpr (kind == Activation::GeluTanh) {
    __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
    __m512 u = _mm512_mul_ps(splat(0.79788456080286536f), _mm512_fmadd_ps(splat(0.044715f), x3, x));
    return _mm512_mul_ps(x, sigmoid(_mm512_add_ps(u, u)));
  }
  if constexpr (kind == Activation::SiLU) return _mm512_mul_ps(x, sigmoid(x));
}
#endif

// out[i] = act(gate[i]) * (up ? up[i] : 1) for i < n.
template <Activation kind>
static void act_span(const float* gate, const float* up, float* out, int64_t n) {
#if defined(__AVX512F__)
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 m = simd::first_lanes(n - i);
    __m512 y = act<kind>(_mm512_maskz_loadu_ps(m, gate + i));
    if (up) y = _mm512_mul_ps(y, _mm512_maskz_loadu_ps(m, up + i));
    _mm512_mask_storeu_ps(out + i, m, y);
  }
#else
  for (int64_t i = 0; i < n; ++i) out[i] = act<kind>(gate[i]) * (up ? up[i] : 1.0f);
#endif
}

using SpanFn = void (*)(const float*, const float*, float*, int64_t);

static SpanFn span_fn(Activation kind) {
  switch (kind) {
    case Activation::ReLU:
      return act_span<Activation::ReLU>;
    case Activation::GeluErf:
      return act_span<Activation::GeluErf>;
    case Activation::GeluTanh:
      return act_span<Activation::GeluTanh>;
    case Activation::SiLU:
      return act_span<Activation::SiLU>;
  }
  return act_span<Activation::ReLU>;
}

}  // namespace

// ---- ops ------------------------------------------------------------------------------------

void add_inplace(float* y, const float* x, int64_t n) {
  for_chunks(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) y[i] += x[i];
  });
}

void activation(Activation kind, float* x, int64_t n) {
  SpanFn fn = span_fn(kind);
  for_chunks(n,
             [&](int64_t begin, int64_t end) { fn(x + begin, nullptr, x + begin, end - begin); });
}

void gated_activation(Activation kind, const float* gate, const float* up, int64_t in_row_stride,
                      float* out, int64_t rows, int64_t dim) {
  SpanFn fn = span_fn(kind);
  parallel_items(rows, dim * 8, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      fn(gate + r * in_row_stride, up + r * in_row_stride, out + r * dim, dim);
  });
}

void softcap(float* x, int64_t n, float cap) {
  const float inv_cap = 1.0f / cap;
  for_chunks(n, [&](int64_t begin, int64_t end) {
#if defined(__AVX512F__)
    for (int64_t i = begin; i < end; i += 16) {
      __mmask16 m = simd::first_lanes(end - i);
      __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), simd::splat(inv_cap));
      _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(simd::tanh(v), simd::splat(cap)));
    }
#else
    for (int64_t i = begin; i < end; ++i) x[i] = cap * std::tanh(x[i] * inv_cap);
#endif
  });
}

namespace {

// RoPE's scaled cos / sin for one positions array and frequency table, [rows][half] each. The
// q and k rotations of every layer of a forward share them, so they are computed once: sincosf
// per call was 3 % of a bf16 forward. The key is the inputs themselves (positions and
// frequencies compared in full), so a new forward, or a model whose table happens to live at the
// same address, computes its own. Two entries: Gemma 3 alternates local and global tables.
struct RopeTable {
  std::vector<int32_t> positions;
  std::vector<float> inv_freq;
  float scaling = 0.0f;
  std::vector<float> cos, sin;
};

bool table_matches(const RopeTable& t, const int32_t* positions, int64_t rows,
                   const float* inv_freq, int64_t half, float scaling) {
  return int64_t(t.positions.size()) == rows && int64_t(t.inv_freq.size()) == half &&
         t.scaling == scaling && std::equal(t.inv_freq.begin(), t.inv_freq.end(), inv_freq) &&
         std::equal(t.positions.begin(), t.positions.end(), positions);
}

const RopeTable& rope_table(const int32_t* positions, int64_t rows, const float* inv_freq,
                            int64_t half, float scaling) {
  thread_local RopeTable tables[2];
  thread_local int last = 0;
  for (int i = 0; i < 2; ++i)
    if (table_matches(tables[i], positions, rows, inv_freq, half, scaling)) return tables[i];
  last = 1 - last;
  RopeTable& t = tables[last];
  t.positions.assign(positions, positions + rows);
  t.inv_freq.assign(inv_freq, inv_freq + half);
  t.scaling = scaling;
  t.cos.resize(size_t(rows * half));
  t.sin.resize(size_t(rows * half));
  parallel_items(rows, half * 40, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      for (int64_t i = 0; i < half; ++i) {
        // The angle is rounded to f32 before cos / sin, as HF computes it (inv_freq @ position in
        // f32): at position 2000 that rounding moves cos by ~1e-4, more than any later error.
        float angle = float(positions[r]) * inv_freq[i];
        t.cos[size_t(r * half + i)] = std::cos(angle) * scaling;
        t.sin[size_t(r * half + i)] = std::sin(angle) * scaling;
      }
  });
  return t;
}

}  // namespace

void rope(float* x, const int32_t* positions, int64_t rows, int64_t heads, int64_t head_dim,
          int64_t rotary_dim, const float* inv_freq, float attention_scaling) {
  const int64_t half = rotary_dim / 2;
  const RopeTable& table = rope_table(positions, rows, inv_freq, half, attention_scaling);
  parallel_items(rows, heads * rotary_dim * 4, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* c = table.cos.data() + r * half;
      const float* s = table.sin.data() + r * half;
      for (int64_t h = 0; h < heads; ++h) {
        float* x1 = x + (r * heads + h) * head_dim;
        float* x2 = x1 + half;
        for (int64_t i = 0; i < half; ++i) {
          float a = x1[i], b = x2[i];
          x1[i] = a * c[i] - b * s[i];
          x2[i] = b * c[i] + a * s[i];
        }
      }
    }
  });
}

}  // namespace zoft::cpu::detail::ZOFT_OPS_ISA
