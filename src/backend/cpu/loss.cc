// cross_entropy: per row, logsumexp(logits) - logits[target], with the row maximum subtracted
// before exponentiating so that no logit overflows.
#include <cmath>

#include "backend/cpu/parallel.h"
#include "backend/cpu/simd.h"
#include "backend/ops.h"
#include "core/error.h"

namespace zoft::cpu {

static float row_max(const float* x, int64_t n) {
#if defined(__AVX512F__)
  __m512 best = simd::splat(-INFINITY);
  for (int64_t i = 0; i < n; i += 16)
    best = _mm512_max_ps(best, _mm512_mask_loadu_ps(best, simd::first_lanes(n - i), x + i));
  return simd::reduce_max(best);
#else
  float best = -INFINITY;
  for (int64_t i = 0; i < n; ++i) best = x[i] > best ? x[i] : best;
  return best;
#endif
}

// sum_i exp(x[i] - shift)
static double sum_exp(const float* x, int64_t n, float shift) {
#if defined(__AVX512F__)
  __m512 acc = _mm512_setzero_ps();
  const __m512 s = simd::splat(shift);
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 m = simd::first_lanes(n - i);
    __m512 e = simd::exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), s));
    acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(m, e));
  }
  return simd::reduce_add(acc);
#else
  double acc = 0;
  for (int64_t i = 0; i < n; ++i) acc += std::exp(double(x[i] - shift));
  return acc;
#endif
}

void cross_entropy(const float* logits, const int32_t* targets, int64_t rows, int64_t vocab,
                   float* loss) {
  for (int64_t r = 0; r < rows; ++r)
    ZOFT_CHECK(targets[r] < vocab, "cross_entropy: target {} at row {} is outside the {} logits",
               targets[r], r, vocab);
  parallel_items(rows, vocab * 12, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      if (targets[r] < 0) {
        loss[r] = 0.0f;
        continue;
      }
      const float* row = logits + r * vocab;
      float max = row_max(row, vocab);
      loss[r] = float(std::log(sum_exp(row, vocab, max)) + max - row[targets[r]]);
    }
  });
}

}  // namespace zoft::cpu
