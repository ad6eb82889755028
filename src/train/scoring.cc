#include "train/scoring.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "core/progress.h"
#include "data/batch.h"
#include "train/objective.h"

namespace zoft {

namespace {

bool single_token_candidates(const std::vector<data::EncodedExample>& examples) {
  for (const auto& e : examples)
    for (const auto& c : e.candidate_ids)
      if (c.size() != 1) return false;
  return true;
}

// Left-padded contexts; the logits of each last position give every candidate's log-prob.
int64_t correct_single_token(Decoder& model, const std::vector<data::EncodedExample>& examples,
                             size_t begin, size_t end, int32_t pad_id) {
  std::vector<std::vector<int32_t>> contexts;
  for (size_t i = begin; i < end; ++i) contexts.push_back(examples[i].context_ids);
  TokenBatch batch = TokenBatch::from_sequences(contexts, pad_id, true);
  const int64_t V = model.config().vocab_size, T = batch.seq;
  std::vector<int64_t> rows;
  for (int64_t b = 0; b < batch.batch; ++b) rows.push_back(b * T + T - 1);
  std::vector<float> logits(rows.size() * size_t(V));
  KvCache cache(model.config(), batch.batch, T, true);
  model.forward_cached(batch, cache, rows, logits.data());
  int64_t correct = 0;
  for (size_t r = 0; r < rows.size(); ++r) {
    const data::EncodedExample& e = examples[begin + r];
    const float* row = logits.data() + r * size_t(V);
    // The softmax normaliser is common to all candidates: compare raw logits.
    int32_t best = 0;
    for (size_t c = 1; c < e.candidate_ids.size(); ++c)
      if (row[e.candidate_ids[c][0]] > row[e.candidate_ids[size_t(best)][0]]) best = int32_t(c);
    correct += best == e.label;
  }
  return correct;
}

int64_t correct_general(Decoder& model, const std::vector<data::EncodedExample>& examples,
                        size_t begin, size_t end, int32_t pad_id) {
  data::BatchOptions options;
  options.mode = data::LossMode::kClassification;
  options.pad_id = pad_id;
  std::vector<size_t> idx;
  for (size_t i = begin; i < end; ++i) idx.push_back(i);
  data::Batch b = data::make_batch(examples, idx, options);
  TokenBatch tb;
  tb.batch = b.rows;
  tb.seq = b.seq;
  tb.ids = b.ids;
  tb.mask = b.mask;
  std::vector<float> loss(size_t(tb.rows()));
  model.token_losses(tb, b.targets.data(), loss.data());
  return batch_accuracy(b, loss).correct;
}

}  // namespace

int64_t count_correct(Decoder& model, const std::vector<data::EncodedExample>& examples,
                      int64_t batch_size, int32_t pad_id, const char* progress_label) {
  const bool fast = single_token_candidates(examples);
  int64_t correct = 0;
  std::optional<Progress> progress;
  if (progress_label) progress.emplace(progress_label, int64_t(examples.size()), "examples");
  for (size_t begin = 0; begin < examples.size(); begin += size_t(batch_size)) {
    size_t end = std::min(examples.size(), begin + size_t(batch_size));
    correct += fast ? correct_single_token(model, examples, begin, end, pad_id)
                    : correct_general(model, examples, begin, end, pad_id);
    if (progress) progress->update(int64_t(end));
  }
  return correct;
}

}  // namespace zoft
