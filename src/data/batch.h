// Batches as the model takes them: flat [rows, seq] arrays of ids, attention mask and next-token
// targets, padded on the left (MeZO trains with left padding) or the right.
#pragma once

#include <cstdint>
#include <vector>

#include "data/encode.h"

namespace zoft::data {

enum class LossMode {
  kAnswerOnly,      // one row per example (its correct candidate), targets on the candidate's
                    // tokens only (MeZO's --only_train_option)
  kFullSequence,    // one row per example (its correct candidate), targets on every token
  kClassification,  // one row per candidate, targets on each candidate's tokens; the loss
                    // compares candidates (MeZO's --train_as_classification, and evaluation)
};

enum class Padding { kLeft, kRight };

struct BatchOptions {
  LossMode mode = LossMode::kAnswerOnly;
  Padding padding = Padding::kLeft;
  int32_t pad_id = 0;              // see pad_token_for()
  int64_t pad_to_multiple_of = 1;  // MeZO uses 8
};

struct Batch {
  int64_t rows = 0, seq = 0;
  std::vector<int32_t> ids;            // [rows, seq], pad_id where mask is 0
  std::vector<uint8_t> mask;           // [rows, seq], 1 = real token
  std::vector<int32_t> targets;        // [rows, seq]: the token at t + 1 where scored, else -1
  std::vector<int32_t> row_example;    // [rows]: which example (index into the batch's list)
  std::vector<int32_t> row_candidate;  // [rows]: which of its candidates
  std::vector<int32_t> labels;         // [examples]: the correct candidate

  int64_t scored_tokens() const;  // targets >= 0
};

// The batch of examples[indices[i]] for i in order (indices as DataOrder::next gives them).
Batch make_batch(const std::vector<EncodedExample>& examples, const std::vector<size_t>& indices,
                 const BatchOptions& options);

// A causal-LM batch of equal or unequal length chunks: targets on every next token.
Batch make_lm_batch(const std::vector<std::vector<int32_t>>& chunks,
                    const std::vector<size_t>& indices, const BatchOptions& options);

// The tokenizer's pad token, else its EOS (as HF scripts set pad = eos), else 0; padded
// positions are masked, so the choice only has to be a valid id.
int32_t pad_token_for(const text::Tokenizer& tokenizer);

}  // namespace zoft::data
