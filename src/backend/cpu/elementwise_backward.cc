// Backward of the elementwise ops: activation, gated_activation, rope, softcap.
// Each activation gives its value and its derivative together (the gated backward needs both):
//   ReLU      1[x > 0]
//   GeluErf   Phi(x) + x phi(x)                  Phi = (1 + erf(x / sqrt 2)) / 2, phi its density
//   GeluTanh  s + 2 x s (1 - s) u'(x)            s = sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3)
//   SiLU      s + x s (1 - s)                    s = sigmoid(x)
// (GeluTanh: 0.5 (1 + tanh u) = sigmoid(2u), and d/du of it is 2 s (1 - s).)
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/op_kernels.h"
#include "backend/cpu/parallel.h"
#include "backend/cpu/simd.h"

#if !defined(ZOFT_OPS_ISA)
#error \
    "elementwise_backward.cc is compiled once per instruction set (CMakeLists.txt, zoft_ops_<copy>)"
#endif

namespace zoft::cpu::detail::ZOFT_OPS_ISA {
namespace elementwise_bwd {
// Internal linkage, for the reason in tools/check_isa_objects.py.
namespace {

constexpr int64_t kChunkElems = 8192;
constexpr float kSqrt2OverPi = 0.79788456080286536f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;  // 1 / sqrt(2 pi)

static void over_chunks(int64_t n, const std::function<void(int64_t, int64_t)>& body) {
  const int64_t chunks = (n + kChunkElems - 1) / kChunkElems;
  parallel_items(chunks, kChunkElems * 4, [&](int64_t c0, int64_t c1) {
    body(c0 * kChunkElems, std::min(n, c1 * kChunkElems));
  });
}

// ---- value and derivative, scalar -------------------------------------------------------------

template <Activation kind>
static void value_and_slope(float x, float& value, float& slope) {
  if constexpr (kind == Activation::ReLU) {
    value = x > 0.0f ? x : 0.0f;
    slope = x > 0.0f ? 1.0f : 0.0f;
  } else if constexpr (kind == Activation::GeluErf) {
    const float cdf = 0.5f * std::erfc(-x * 0.70710678118654752f);
    value = x * cdf;
    slope = cdf + x * kInvSqrt2Pi * std::exp(-0.5f * x * x);
  } else if constexpr (kind == Activation::GeluTanh) {
    const float u = kSqrt2OverPi * (x + 0.044715f * x * x * x);
    const float s = 1.0f / (1.0f + std::exp(-2.0f * u));
    value = x * s;
    slope = s + 2.0f * x * s * (1.0f - s) * kSqrt2OverPi * (1.0f + 3.0f * 0.044715f * x * x);
  } else {
    const float s = 1.0f / (1.0f + std::exp(-x));
    value = x * s;
    slope = s + x * s * (1.0f - s);
  }
}

// ---- value and derivative, AVX-512 ------------------------------------------------------------

#if defined(__AVX512F__)
template <Activation kind>
static void value_and_slope(__m512 x, __m512& value, __m512& slope) {
  using namespace simd;
  const __m512 one = splat(1.0f);
  if constexpr (kind == Activation::ReLU) {
    __mmask16 positive = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ);
    value = _mm512_maskz_mov_ps(positive, x);
    slope = _mm512_maskz_mov_ps(positive, one);
  } else if constexpr (kind == Activation::GeluErf) {
    __m512 cdf = _mm512_mul_ps(splat(0.5f), one_plus_erf_scaled(x));
    __m512 density =
        _mm512_mul_ps(splat(kInvSqrt2Pi), exp(_mm512_mul_ps(splat(-0.5f), _mm512_mul_ps(x, x))));
    value = _mm512_mul_ps(x, cdf);
    slope = _mm512_fmadd_ps(x, density, cdf);
  } else if constexpr (kind == Activation::GeluTanh) {
    __m512 x2 = _mm512_mul_ps(x, x);
    __m512 u = _mm512_mul_ps(splat(kSqrt2OverPi),
                             _mm512_fmadd_ps(splat(0.044715f), _mm512_mul_ps(x2, x), x));
    __m512 s = sigmoid(_mm512_add_ps(u, u));
    __m512 du = _mm512_mul_ps(splat(kSqrt2OverPi), _mm512_fmadd_ps(splat(3 * 0.044715f), x2, one));
    __m512 ds = _mm512_mul_ps(_mm512_mul_ps(splat(2.0f), s), _mm512_sub_ps(one, s));
    value = _mm512_mul_ps(x, s);
    slope = _mm512_fmadd_ps(_mm512_mul_ps(x, ds), du, s);
  } else {
    __m512 s = sigmoid(x);
    value = _mm512_mul_ps(x, s);
    slope = _mm512_fmadd_ps(_mm512_mul_ps(x, s), _mm512_sub_ps(one, s), s);
  }
}
#endif

// up == nullptr: dgate = dy act'(gate).  Otherwise dgate = dy up act'(gate), dup = dy act(gate).
template <Activation kind>
static void backward_span(const float* gate, const float* up, const float* dy, float* dgate,
                          float* dup, int64_t n) {
#if defined(__AVX512F__)
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 m = simd::first_lanes(n - i);
    __m512 value, slope;
    value_and_slope<kind>(_mm512_maskz_loadu_ps(m, gate + i), value, slope);
    __m512 d = _mm512_maskz_loadu_ps(m, dy + i);
    if (up) {
      __m512 u = _mm512_maskz_loadu_ps(m, up + i);
      _mm512_mask_storeu_ps(dgate + i, m, _mm512_mul_ps(_mm512_mul_ps(d, u), slope));
      _mm512_mask_storeu_ps(dup + i, m, _mm512_mul_ps(d, value));
    } else {
      _mm512_mask_storeu_ps(dgate + i, m, _mm512_mul_ps(d, slope));
    }
  }
#else
  for (int64_t i = 0; i < n; ++i) {
    float value, slope;
    value_and_slope<kind>(gate[i], value, slope);
    const float d = dy[i];
    if (up) {
      const float u = up[i];
      dgate[i] = d * u * slope;
      dup[i] = d * value;
    } else {
      dgate[i] = d * slope;
    }
  }
#endif
}

using SpanBackwardFn = void (*)(const float*, const float*, const float*, float*, float*, int64_t);

static SpanBackwardFn span_backward_fn(Activation kind) {
  switch (kind) {
    case Activation::ReLU:
      return backward_span<Activation::ReLU>;
    case Activation::GeluErf:
      return backward_span<Activation::GeluErf>;
    case Activation::GeluTanh:
      return backward_span<Activation::GeluTanh>;
    case Activation::SiLU:
      return backward_span<Activation::SiLU>;
  }
  return backward_span<Activation::ReLU>;
}

}  // namespace
}  // namespace elementwise_bwd

void activation_backward(Activation kind, const float* x, const float* dy, float* dx, int64_t n) {
  auto fn = elementwise_bwd::span_backward_fn(kind);
  elementwise_bwd::over_chunks(n, [&](int64_t begin, int64_t end) {
    fn(x + begin, nullptr, dy + begin, dx + begin, nullptr, end - begin);
  });
}

void gated_activation_backward(Activation kind, const float* gate, const float* up,
                               int64_t in_row_stride, const float* dy, float* dgate, float* dup,
                               int64_t out_row_stride, int64_t rows, int64_t dim) {
  auto fn = elementwise_bwd::span_backward_fn(kind);
  parallel_items(rows, dim * 10, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      fn(gate + r * in_row_stride, up + r * in_row_stride, dy + r * dim, dgate + r * out_row_stride,
         dup + r * out_row_stride, dim);
  });
}

// The forward rotates (x1, x2) by +angle; its transpose rotates the gradient by -angle:
// dx1 = d1 cos + d2 sin, dx2 = d2 cos - d1 sin, with the forward's f32 angle and scaling.
void rope_backward(float* dx, const int32_t* positions, int64_t rows, int64_t heads,
                   int64_t head_dim, int64_t rotary_dim, const float* inv_freq,
                   float attention_scaling) {
  const int64_t half = rotary_dim / 2;
  parallel_items(rows, heads * rotary_dim * 4 + half * 40, [&](int64_t begin, int64_t end) {
    std::vector<float> cos_row(static_cast<size_t>(half)), sin_row(static_cast<size_t>(half));
    for (int64_t r = begin; r < end; ++r) {
      for (int64_t i = 0; i < half; ++i) {
        float angle = float(positions[r]) * inv_freq[i];
        cos_row[i] = std::cos(angle) * attention_scaling;
        sin_row[i] = std::sin(angle) * attention_scaling;
      }
      const float* c = cos_row.data();
      const float* s = sin_row.data();
      for (int64_t h = 0; h < heads; ++h) {
        float* d1 = dx + (r * heads + h) * head_dim;
        float* d2 = d1 + half;
        for (int64_t i = 0; i < half; ++i) {
          const float a = d1[i], b = d2[i];
          d1[i] = a * c[i] + b * s[i];
          d2[i] = b * c[i] - a * s[i];
        }
      }
    }
  });
}

void softcap_backward(const float* y, const float* dy, float* dx, int64_t n, float cap) {
  const float inv_cap = 1.0f / cap;
  elementwise_bwd::over_chunks(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float t = y[i] * inv_cap;
      dx[i] = dy[i] * (1.0f - t * t);
    }
  });
}

}  // namespace zoft::cpu::detail::ZOFT_OPS_ISA
