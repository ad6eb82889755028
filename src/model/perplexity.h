// Perplexity of a long token stream with a sliding window (HF's fixed-length-model recipe):
// windows of `window` tokens advance by `stride`; each token is scored once, by the first
// window that predicts it, with up to window - stride tokens of context before it.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "model/decoder.h"

namespace zoft {

struct PerplexityResult {
  double total_nll = 0;  // summed negative log-likelihood (nats)
  int64_t tokens = 0;    // tokens scored (all but the first)
  int64_t windows = 0;
  double mean_nll() const { return tokens ? total_nll / double(tokens) : 0.0; }
  double perplexity() const;
};

PerplexityResult perplexity(
    Decoder& model, const std::vector<int32_t>& ids, int64_t window, int64_t stride,
    const std::function<void(int64_t done, int64_t total)>& progress = nullptr);

// The same with any forward that gives Decoder::token_losses' quantities (e.g. the GPU's).
using TokenLossFn =
    std::function<void(const TokenBatch& batch, const int32_t* targets, float* loss)>;
PerplexityResult perplexity(
    const TokenLossFn& token_losses, const std::vector<int32_t>& ids, int64_t window,
    int64_t stride, const std::function<void(int64_t done, int64_t total)>& progress = nullptr);

}  // namespace zoft
