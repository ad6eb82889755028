#include "data/batch.h"

#include <algorithm>

#include "core/error.h"

namespace zoft::data {

namespace {

// One row to lay out: a sequence in up to two parts, scored from token `scored_from` on.
struct RowSpec {
  const std::vector<int32_t>* head;
  const std::vector<int32_t>* tail;  // may be null
  size_t scored_from;
  int32_t example, candidate;
  size_t length() const { return head->size() + (tail ? tail->size() : 0); }
  int32_t at(size_t i) const { return i < head->size() ? (*head)[i] : (*tail)[i - head->size()]; }
};

Batch lay_out(const std::vector<RowSpec>& specs, const BatchOptions& options) {
  ZOFT_CHECK(!specs.empty(), "an empty batch");
  ZOFT_CHECK(options.pad_to_multiple_of > 0, "pad_to_multiple_of must be positive");
  size_t longest = 0;
  for (const auto& spec : specs) longest = std::max(longest, spec.length());
  int64_t m = options.pad_to_multiple_of;
  Batch batch;
  batch.rows = int64_t(specs.size());
  batch.seq = (int64_t(longest) + m - 1) / m * m;
  size_t cells = size_t(batch.rows * batch.seq);
  batch.ids.assign(cells, options.pad_id);
  batch.mask.assign(cells, 0);
  batch.targets.assign(cells, -1);
  for (size_t r = 0; r < specs.size(); ++r) {
    const RowSpec& spec = specs[r];
    size_t n = spec.length();
    size_t offset = options.padding == Padding::kLeft ? size_t(batch.seq) - n : 0;
    size_t base = r * size_t(batch.seq) + offset;
    for (size_t i = 0; i < n; ++i) {
      batch.ids[base + i] = spec.at(i);
      batch.mask[base + i] = 1;
      // The logits at token i predict token i + 1.
      if (i + 1 < n && i + 1 >= spec.scored_from) batch.targets[base + i] = spec.at(i + 1);
    }
    batch.row_example.push_back(spec.example);
    batch.row_candidate.push_back(spec.candidate);
  }
  return batch;
}

}  // namespace

int64_t Batch::scored_tokens() const {
  return std::count_if(targets.begin(), targets.end(), [](int32_t t) { return t >= 0; });
}

Batch make_batch(const std::vector<EncodedExample>& examples, const std::vector<size_t>& indices,
                 const BatchOptions& options) {
  std::vector<RowSpec> specs;
  std::vector<int32_t> labels;
  for (size_t e = 0; e < indices.size(); ++e) {
    const EncodedExample& example = examples.at(indices[e]);
    ZOFT_CHECK(example.label >= 0 && size_t(example.label) < example.candidate_ids.size(),
               "example {} has label {} but {} candidates", indices[e], example.label,
               example.candidate_ids.size());
    labels.push_back(example.label);
    size_t context = example.context_ids.size();
    if (options.mode == LossMode::kClassification) {
      for (size_t c = 0; c < example.candidate_ids.size(); ++c)
        specs.push_back(
            {&example.context_ids, &example.candidate_ids[c], context, int32_t(e), int32_t(c)});
      continue;
    }
    size_t scored_from = options.mode == LossMode::kAnswerOnly ? context : 1;
    specs.push_back({&example.context_ids, &example.candidate_ids[size_t(example.label)],
                     scored_from, int32_t(e), example.label});
  }
  Batch batch = lay_out(specs, options);
  batch.labels = std::move(labels);
  return batch;
}

Batch make_lm_batch(const std::vector<std::vector<int32_t>>& chunks,
                    const std::vector<size_t>& indices, const BatchOptions& options) {
  std::vector<RowSpec> specs;
  for (size_t e = 0; e < indices.size(); ++e)
    specs.push_back({&chunks.at(indices[e]), nullptr, 1, int32_t(e), 0});
  Batch batch = lay_out(specs, options);
  batch.labels.assign(indices.size(), 0);
  return batch;
}

int32_t pad_token_for(const text::Tokenizer& tokenizer) {
  if (tokenizer.pad_id() >= 0) return tokenizer.pad_id();
  if (tokenizer.eos_id() >= 0) return tokenizer.eos_id();
  return 0;
}

}  // namespace zoft::data
