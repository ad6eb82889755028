#include "model/generate.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace zoft {

Sampler::Sampler(const SamplingOptions& options) : options_(options), rng_(options.seed) {
  ZOFT_CHECK(options.temperature >= 0, "temperature must be >= 0, got {}", options.temperature);
  ZOFT_CHECK(options.top_p > 0 && options.top_p <= 1, "top-p must be in (0, 1], got {}",
             options.top_p);
  ZOFT_CHECK(options.top_k >= 0, "top-k must be >= 0, got {}", options.top_k);
  ZOFT_CHECK(options.repetition_penalty > 0, "repetition penalty must be > 0, got {}",
             options.repetition_penalty);
}

int32_t Sampler::next(float* logits, int64_t vocab, const std::vector<int32_t>& history) {
  // Repetition penalty (CTRL): make every token already seen less likely, once per token.
  if (options_.repetition_penalty != 1.0f) {
    std::vector<int32_t> seen(history);
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    for (int32_t id : seen) {
      if (id < 0 || id >= vocab) continue;
      float& l = logits[id];
      l = l < 0 ? l * options_.repetition_penalty : l / options_.repetition_penalty;
    }
  }
  if (options_.temperature == 0.0f)
    return int32_t(std::max_element(logits, logits + vocab) - logits);

  // Candidates sorted by logit, cut by top-k, then softmax at the temperature, then top-p.
  std::vector<int32_t> order(static_cast<size_t>(vocab));
  std::iota(order.begin(), order.end(), 0);
  int64_t keep = options_.top_k > 0 ? std::min(options_.top_k, vocab) : vocab;
  std::partial_sort(order.begin(), order.begin() + keep, order.end(),
                    [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  order.resize(size_t(keep));
  std::vector<double> probs(order.size());
  double top = logits[order[0]], sum = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    probs[i] = std::exp((double(logits[order[i]]) - top) / options_.temperature);
    sum += probs[i];
  }
  double cumulative = 0;
  size_t cut = order.size();
  for (size_t i = 0; i < order.size(); ++i) {
    cumulative += probs[i] / sum;
    if (cumulative >= options_.top_p) {
      cut = i + 1;
      break;
    }
  }
  std::discrete_distribution<size_t> pick(probs.begin(), probs.begin() + long(cut));
  return order[pick(rng_)];
}

int64_t generation_capacity(const ModelConfig& config, const std::vector<int32_t>& prompt,
                            const SamplingOptions& options) {
  ZOFT_CHECK(!prompt.empty(), "the prompt is empty: give at least one token");
  ZOFT_CHECK(options.max_new_tokens >= 0, "max new tokens must be >= 0");
  // Compared before adding, so that a huge max_new_tokens cannot overflow.
  if (options.max_new_tokens > config.max_positions - int64_t(prompt.size()))
    fail(
        "prompt ({} tokens) + max new tokens ({}) exceed the model's max_position_embeddings {}: "
        "lower --max-new-tokens",
        prompt.size(), options.max_new_tokens, config.max_positions);
  return int64_t(prompt.size()) + options.max_new_tokens;
}

// A NaN or infinite logit (e.g. from a NaN weight) would make every token look equally likely
// or pick token 0 forever; a scan of one row costs nothing next to the forward that made it.
static void check_finite_logits(const std::vector<float>& logits, int64_t new_tokens) {
  for (size_t i = 0; i < logits.size(); ++i)
    if (!std::isfinite(logits[i]))
      fail(
          "the model produced a non-finite logit ({} for token {}) after {} new tokens: its "
          "weights or inputs hold NaN or Inf; generation stopped",
          logits[i], i, new_tokens);
}

std::vector<int32_t> generate(const ModelConfig& config, const CachedStepFn& forward,
                              const std::vector<int32_t>& prompt, const SamplingOptions& options,
                              const std::function<void(int32_t)>& on_token) {
  generation_capacity(config, prompt, options);
  const int64_t V = config.vocab_size;
  Sampler sampler(options);
  std::vector<int32_t> history(prompt), produced;
  std::vector<float> logits(static_cast<size_t>(V));
  TokenBatch step = TokenBatch::from_sequences({prompt}, 0, false);
  for (int64_t n = 0; n < options.max_new_tokens; ++n) {
    forward(step, logits.data());
    check_finite_logits(logits, int64_t(produced.size()));
    int32_t id = sampler.next(logits.data(), V, history);
    produced.push_back(id);
    history.push_back(id);
    if (on_token) on_token(id);
    if (std::find(options.stop_ids.begin(), options.stop_ids.end(), id) != options.stop_ids.end())
      break;
    step = TokenBatch::from_sequences({{id}}, 0, false);
  }
  return produced;
}

std::vector<int32_t> generate(Decoder& model, const std::vector<int32_t>& prompt,
                              const SamplingOptions& options,
                              const std::function<void(int32_t)>& on_token) {
  KvCache cache(model.config(), 1, generation_capacity(model.config(), prompt, options), false,
                model.device());
  auto step = [&](const TokenBatch& batch, float* logits) {
    model.forward_cached(batch, cache, {batch.seq - 1}, logits);
  };
  return generate(model.config(), step, prompt, options, on_token);
}

}  // namespace zoft
