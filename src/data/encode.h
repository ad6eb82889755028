// Task examples as token ids, the way MeZO's encode_prompt() makes them (large_models/utils.py):
// each full prompt context + candidate is tokenized whole, with the tokenizer's special tokens
// (BOS for OPT / Llama / Gemma); the candidate's tokens are the last
//   len(encode(context + candidate)) - len(encode(context))
// of it (MeZO's option_len). Too long inputs lose tokens from the left, after the BOS.
#pragma once

#include <cstdint>
#include <vector>

#include "data/task.h"
#include "text/tokenizer.h"

namespace zoft::data {

// The input for candidate c is context_ids + candidate_ids[c]; that is encode(context +
// candidate) exactly. context_ids is shared by all candidates: where a tokenizer merges tokens
// across the context / candidate boundary differently per candidate (no MeZO template does so
// with GPT-2 / OPT / Qwen / Llama / Gemma tokenizers), the shared part is the longest prefix common
// to all, and each candidate's scored tokens start there.
struct EncodedExample {
  std::vector<int32_t> context_ids;
  std::vector<std::vector<int32_t>> candidate_ids;
  int32_t label = -1;

  int64_t max_length() const;  // of context + the longest candidate
};

struct EncodeOptions {
  int64_t max_length = 2048;  // MeZO's default
  // true: drop context tokens from the left (after the tokenizer's leading special tokens)
  // until context + the longest candidate fits, as MeZO does; false: an example that does not
  // fit is an error naming it.
  bool truncate = true;
};

// Throws zoft::Error naming the example's origin when a candidate encodes to no tokens, or does
// not fit in max_length even with no context left, or (truncate = false) when it is too long.
EncodedExample encode_example(const TaskExample& example, const text::Tokenizer& tokenizer,
                              const EncodeOptions& options = {});
// All of them, on the thread pool; the error reported is that of the first failing example.
std::vector<EncodedExample> encode_examples(const std::vector<TaskExample>& examples,
                                            const text::Tokenizer& tokenizer,
                                            const EncodeOptions& options = {});

// How many special tokens the tokenizer puts in front of every sequence (1 for a BOS).
size_t leading_special_tokens(const text::Tokenizer& tokenizer);

}  // namespace zoft::data
