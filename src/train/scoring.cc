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

// Left-padded contexts: every candidate is read off the last position, and only the candidates'
// rows of the LM head are computed (the softmax normaliser is common to all of them).
int64_t correct_single_token(Decoder& model, const std::vector<data::EncodedExample>& examples,
                             size_t begin, size_t end, int32_t pad_id) {
  std::vector<std::vector<int32_t>> contexts;
  std::vector<int32_t> ids;  // distinct candidate tokens of this batch
  for (size_t i = begin; i < end; ++i) {
    contexts.push_back(examples[i].context_ids);
    for (const auto& c : examples[i].candidate_ids)
      if (std::find(ids.begin(), ids.end(), c[0]) == ids.end()) ids.push_back(c[0]);
  }
  TokenBatch batch = TokenBatch::from_sequences(contexts, pad_id, true);
  const int64_t T = batch.seq;
  std::vector<int64_t> rows;
  for (int64_t b = 0; b < batch.batch; ++b) rows.push_back(b * T + T - 1);
  KvCache cache(model.config(), batch.batch, T, true);
  ForwardState state;
  model.begin_forward(batch, cache, state);
  model.run_blocks(state);
  std::vector<float> logits(rows.size() * ids.size());
  model.candidate_logits(state.h(), rows, ids, logits.data());
  auto column = [&](int32_t token) {
    return size_t(std::find(ids.begin(), ids.end(), token) - ids.begin());
  };
  int64_t correct = 0;
  for (size_t r = 0; r < rows.size(); ++r) {
    const data::EncodedExample& e = examples[begin + r];
    const float* row = logits.data() + r * ids.size();
    int32_t best = 0;
    for (size_t c = 1; c < e.candidate_ids.size(); ++c)
      if (row[column(e.candidate_ids[c][0])] > row[column(e.candidate_ids[size_t(best)][0])])
        best = int32_t(c);
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
