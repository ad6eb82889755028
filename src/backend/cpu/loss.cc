// cross_entropy: per row, logsumexp(logits) - logits[target], with the row maximum subtracted
// before exponentiating so that no logit overflows.
#include <cmath>

#include "backend/cpu/op_kernels.h"
#include "backend/cpu/parallel.h"
#include "backend/cpu/simd.h"
#include "backend/cpu/softmax_rows.h"
#include "core/error.h"

#if !defined(ZOFT_OPS_ISA)
#error "loss.cc is compiled once per instruction set (CMakeLists.txt, zoft_ops_<copy>)"
#endif

namespace zoft::cpu::detail::ZOFT_OPS_ISA {

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

}  // namespace zoft::cpu::detail::ZOFT_OPS_ISA
