#include "model/perplexity.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace zoft {

double PerplexityResult::perplexity() const {
  return std::exp(mean_nll());
}

PerplexityResult perplexity(Decoder& model, const std::vector<int32_t>& ids, int64_t window,
                            int64_t stride, const std::function<void(int64_t, int64_t)>& progress) {
  TokenLossFn losses = [&model](const TokenBatch& batch, const int32_t* targets, float* loss) {
    model.token_losses(batch, targets, loss);
  };
  return perplexity(losses, ids, window, stride, progress);
}

PerplexityResult perplexity(const TokenLossFn& token_losses, const std::vector<int32_t>& ids,
                            int64_t window, int64_t stride,
                            const std::function<void(int64_t, int64_t)>& progress) {
  ZOFT_CHECK(window >= 2, "the evaluation window must hold at least 2 tokens, got {}", window);
  ZOFT_CHECK(stride >= 1 && stride <= window, "the stride must be in [1, window={}], got {}",
             window, stride);
  ZOFT_CHECK(ids.size() >= 2, "the text has {} tokens: at least 2 are needed for perplexity",
             ids.size());
  PerplexityResult result;
  const int64_t n = int64_t(ids.size());
  int64_t scored_until = 1;  // tokens [1, scored_until) already have a loss
  for (int64_t begin = 0; scored_until < n; begin += stride) {
    int64_t end = std::min(begin + window, n);
    TokenBatch batch;
    batch.batch = 1;
    batch.seq = end - begin;
    batch.ids.assign(ids.begin() + begin, ids.begin() + end);
    batch.mask.assign(size_t(batch.seq), 1);
    // Position t predicts token begin + t + 1; score only tokens not scored by an earlier window.
    std::vector<int32_t> targets(size_t(batch.seq), -1);
    for (int64_t t = 0; t + 1 < batch.seq; ++t)
      if (begin + t + 1 >= scored_until) targets[size_t(t)] = ids[size_t(begin + t + 1)];
    std::vector<float> loss(size_t(batch.seq));
    token_losses(batch, targets.data(), loss.data());
    for (int64_t t = 0; t < batch.seq; ++t)
      if (targets[size_t(t)] >= 0) {
        result.total_nll += loss[size_t(t)];
        ++result.tokens;
      }
    scored_until = end;
    ++result.windows;
    if (progress) progress(scored_until, n);
  }
  return result;
}

}  // namespace zoft
