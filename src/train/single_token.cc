#include "train/single_token.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

#include "core/error.h"

namespace zoft {

namespace {

// A left-padded candidate row whose candidate is one token has exactly one target: at the
// next-to-last position, predicting the row's last token.
bool one_target_at_end(const data::Batch& b, int64_t row) {
  const int32_t* targets = b.targets.data() + row * b.seq;
  if (b.seq < 2 || targets[b.seq - 2] < 0 || !b.mask[size_t(row * b.seq + b.seq - 1)]) return false;
  return std::count_if(targets, targets + b.seq, [](int32_t t) { return t >= 0; }) == 1;
}

// Columns that are padding in every context row carry nothing: drop them (the contexts are
// then exactly as long as the longest one, as evaluation lays them out).
void drop_leading_padding(TokenBatch& t) {
  int64_t pad = t.seq;
  for (int64_t r = 0; r < t.batch; ++r) {
    int64_t first = 0;
    while (first < t.seq && !t.mask[size_t(r * t.seq + first)]) ++first;
    pad = std::min(pad, first);
  }
  if (pad == 0) return;
  TokenBatch out;
  out.batch = t.batch;
  out.seq = t.seq - pad;
  for (int64_t r = 0; r < t.batch; ++r) {
    auto from = size_t(r * t.seq + pad), to = size_t((r + 1) * t.seq);
    out.ids.insert(out.ids.end(), t.ids.begin() + long(from), t.ids.begin() + long(to));
    out.mask.insert(out.mask.end(), t.mask.begin() + long(from), t.mask.begin() + long(to));
  }
  t = std::move(out);
}

int32_t column_of(std::vector<int32_t>& ids, int32_t token) {
  auto it = std::find(ids.begin(), ids.end(), token);
  if (it != ids.end()) return int32_t(it - ids.begin());
  ids.push_back(token);
  return int32_t(ids.size() - 1);
}

}  // namespace

std::optional<CandidateBatch> single_token_batch(const data::Batch& b) {
  for (int64_t r = 0; r < b.rows; ++r)
    if (!one_target_at_end(b, r)) return std::nullopt;
  const int64_t examples = int64_t(b.labels.size()), context = b.seq - 1;
  CandidateBatch c;
  c.contexts.batch = examples;
  c.contexts.seq = context;
  c.contexts.ids.resize(size_t(examples * context));
  c.contexts.mask.resize(size_t(examples * context));
  c.columns.resize(size_t(examples));
  c.labels = b.labels;
  // Rows come example by example, candidates in order (data::make_batch); the context of an
  // example is its first row without the last token (every row of it has the same context).
  for (int64_t r = 0; r < b.rows; ++r) {
    const auto e = size_t(b.row_example[size_t(r)]);
    ZOFT_CHECK(size_t(b.row_candidate[size_t(r)]) == c.columns[e].size(),
               "single-token batch: row {} is candidate {} of example {}, out of order", r,
               b.row_candidate[size_t(r)], e);
    if (c.columns[e].empty()) {
      std::copy_n(b.ids.begin() + r * b.seq, context, c.contexts.ids.begin() + long(e) * context);
      std::copy_n(b.mask.begin() + r * b.seq, context, c.contexts.mask.begin() + long(e) * context);
    }
    c.columns[e].push_back(column_of(c.ids, b.targets[size_t(r * b.seq + b.seq - 2)]));
  }
  drop_leading_padding(c.contexts);
  return c;
}

double candidate_loss(const CandidateBatch& batch, const float* logits) {
  const size_t width = batch.ids.size(), examples = batch.labels.size();
  double loss = 0;
  for (size_t e = 0; e < examples; ++e) {
    const float* row = logits + e * width;
    const std::vector<int32_t>& cols = batch.columns[e];
    double top = -std::numeric_limits<double>::infinity();
    for (int32_t c : cols) top = std::max(top, double(row[c]));
    double sum_exp = 0;
    for (int32_t c : cols) sum_exp += std::exp(double(row[c]) - top);
    loss += top + std::log(sum_exp) - double(row[cols[size_t(batch.labels[e])]]);
  }
  return loss / double(examples);
}

std::optional<StepBatch> single_token_step_batch(const data::Batch& global, data::LossMode mode,
                                                 dist::Communicator& comm) {
  if (mode != data::LossMode::kClassification) return std::nullopt;
  std::optional<CandidateBatch> c = single_token_batch(global);
  if (!c) return std::nullopt;
  auto all = std::make_shared<CandidateBatch>(std::move(*c));
  // dist: each rank takes an even share of the examples, one row each, in rank order.
  std::vector<int64_t> bounds = dist::even_split(all->contexts.batch, comm.size());
  const int64_t begin = bounds[size_t(comm.rank())], end = bounds[size_t(comm.rank()) + 1];
  StepBatch s;
  s.global = &global;
  s.tokens = all->contexts.slice(begin, end);
  s.global_scored_tokens = global.scored_tokens();
  s.head = [all, bounds, &comm](Decoder& model, const float* hidden, int64_t rows) {
    const int64_t seq = all->contexts.seq, width = int64_t(all->ids.size());
    std::vector<int64_t> last;  // each context's last position
    for (int64_t r = 0; r < rows / seq; ++r) last.push_back(r * seq + seq - 1);
    std::vector<float> mine(last.size() * size_t(width)), gathered;
    model.candidate_logits(hidden, last, all->ids, mine.data());
    if (comm.size() == 1) return candidate_loss(*all, mine.data());
    dist::all_gather_rows(comm, mine, bounds, width, gathered);
    return candidate_loss(*all, gathered.data());
  };
  return s;
}

}  // namespace zoft
