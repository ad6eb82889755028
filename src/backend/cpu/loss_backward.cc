// Backward of embedding (a scatter-add into the table's gradient) and cross_entropy
// (softmax minus one-hot, per row).
#include <algorithm>
#include <cmath>

#include "backend/cpu/op_kernels.h"
#include "backend/cpu/parallel.h"
#include "backend/cpu/simd.h"
#include "backend/cpu/softmax_rows.h"
#include "core/error.h"

#if !defined(ZOFT_OPS_ISA)
#error "loss_backward.cc is compiled once per instruction set (CMakeLists.txt, zoft_ops_<copy>)"
#endif

namespace zoft::cpu::detail::ZOFT_OPS_ISA {
namespace loss_bwd {
// Internal linkage, for the reason in tools/check_isa_objects.py.
namespace {

// out[i] = exp(x[i] - shift) * factor; out may be x.
static void scaled_exp(const float* x, int64_t n, float shift, float factor, float* out) {
#if defined(__AVX512F__)
  const __m512 s = simd::splat(shift), k = simd::splat(factor);
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 m = simd::first_lanes(n - i);
    __m512 e = simd::exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), s));
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(e, k));
  }
#else
  for (int64_t i = 0; i < n; ++i) out[i] = float(std::exp(double(x[i] - shift))) * factor;
#endif
}

}  // namespace
}  // namespace loss_bwd

// Columns are split over the pool (not rows): a repeated id then adds its rows in order, with
// no two threads writing the same element.
void embedding_backward(const float* dout, const int32_t* ids, int64_t rows, int64_t dim,
                        float scale, float* dtable) {
  constexpr int64_t kCols = 128;
  const int64_t blocks = (dim + kCols - 1) / kCols;
  parallel_items(blocks, rows * kCols, [&](int64_t begin, int64_t end) {
    const int64_t c0 = begin * kCols, c1 = std::min(dim, end * kCols);
    for (int64_t r = 0; r < rows; ++r) {
      if (ids[r] < 0) continue;
      float* dst = dtable + int64_t(ids[r]) * dim;
      const float* src = dout + r * dim;
      for (int64_t c = c0; c < c1; ++c) dst[c] += scale * src[c];
    }
  });
}

void cross_entropy_backward(const float* logits, const int32_t* targets, const float* dloss,
                            int64_t rows, int64_t vocab, float* dlogits) {
  for (int64_t r = 0; r < rows; ++r)
    ZOFT_CHECK(targets[r] < vocab,
               "cross_entropy_backward: target {} at row {} is outside the {} logits", targets[r],
               r, vocab);
  parallel_items(rows, vocab * 20, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* row = logits + r * vocab;
      float* grad = dlogits + r * vocab;
      if (targets[r] < 0) {
        std::fill(grad, grad + vocab, 0.0f);
        continue;
      }
      const float max = row_max(row, vocab);
      const double total = sum_exp(row, vocab, max);
      // softmax * dloss, in place when grad == row (each element reads only itself)
      loss_bwd::scaled_exp(row, vocab, max, float(double(dloss[r]) / total), grad);
      grad[targets[r]] -= dloss[r];
    }
  });
}

}  // namespace zoft::cpu::detail::ZOFT_OPS_ISA
