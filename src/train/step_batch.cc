#include "train/step_batch.h"

#include <optional>

#include "dist/startup.h"
#include "train/objective.h"
#include "train/single_token.h"

namespace zoft {

namespace {

// dist: each rank's rows of a global batch: its even share of the examples with all their
// rows (candidates), contiguous and in rank order, so that the ranks' per-token losses put end
// to end are the whole batch's (docs/dist.md).
std::vector<int64_t> shard_rows(const data::Batch& b, int ranks) {
  std::vector<int64_t> examples = dist::even_split(int64_t(b.labels.size()), ranks), rows;
  int64_t row = 0;
  for (int64_t e : examples) {
    while (row < b.rows && b.row_example[size_t(row)] < e) ++row;
    rows.push_back(row);
  }
  rows.back() = b.rows;
  return rows;
}

}  // namespace

StepBatch rank_step_batch(const data::Batch& b, data::LossMode mode, dist::Communicator& comm,
                          std::vector<float>& gathered, bool single_token_fast_path) {
  if (single_token_fast_path)
    if (std::optional<StepBatch> s = single_token_step_batch(b, mode, comm)) return std::move(*s);
  const std::vector<int64_t> shard = shard_rows(b, comm.size());
  const int64_t row0 = shard[size_t(comm.rank())], row1 = shard[size_t(comm.rank()) + 1];
  StepBatch s;
  s.global = &b;
  s.tokens = TokenBatch{b.rows, b.seq, b.ids, b.mask}.slice(row0, row1);
  s.targets.assign(b.targets.begin() + row0 * b.seq, b.targets.begin() + row1 * b.seq);
  s.global_scored_tokens = b.scored_tokens();
  s.objective = [&b, mode, shard, &comm, &gathered](const std::vector<float>& loss) {
    if (comm.size() == 1) return batch_loss(b, loss, mode);
    dist::all_gather_rows(comm, loss, shard, b.seq, gathered);
    return batch_loss(b, gathered, mode);
  };
  return s;
}

}  // namespace zoft
