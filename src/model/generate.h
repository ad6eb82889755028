// Token generation with a KV cache: greedy or sampled (temperature, top-k, top-p, repetition
// penalty), applied in the order HF's generate() applies its logits processors.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "model/decoder.h"

namespace zoft {

struct SamplingOptions {
  int64_t max_new_tokens = 64;
  float temperature = 0.0f;  // 0: greedy
  int64_t top_k = 0;         // 0: off
  float top_p = 1.0f;        // 1: off
  float repetition_penalty = 1.0f;
  uint64_t seed = 0;
  std::vector<int32_t> stop_ids;  // generation ends after emitting one of these
};

// Picks the next token from one row of logits (modified in place).
class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options);
  int32_t next(float* logits, int64_t vocab, const std::vector<int32_t>& history);

 private:
  SamplingOptions options_;
  std::mt19937_64 rng_;
};

// Generates after `prompt`; on_token (may be null) sees each new id as it is produced.
// Returns the new ids (the stop token included when one ended generation).
std::vector<int32_t> generate(Decoder& model, const std::vector<int32_t>& prompt,
                              const SamplingOptions& options,
                              const std::function<void(int32_t)>& on_token = nullptr);

// The same loop over any cached forward (e.g. one with a caller's cache and bookkeeping):
// step(batch, logits) appends the batch to the caller's cache of `capacity` tokens
// (generation_capacity) and writes the last position's logits [vocab] to host memory.
using CachedStepFn = std::function<void(const TokenBatch& batch, float* logits)>;
// prompt + max_new_tokens, after the checks generate() makes (non-empty prompt, positions).
int64_t generation_capacity(const ModelConfig& config, const std::vector<int32_t>& prompt,
                            const SamplingOptions& options);
std::vector<int32_t> generate(const ModelConfig& config, const CachedStepFn& step,
                              const std::vector<int32_t>& prompt, const SamplingOptions& options,
                              const std::function<void(int32_t)>& on_token = nullptr);

}  // namespace zoft
