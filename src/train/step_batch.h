// A training batch as one rank's StepBatch (train/method.h): shared by the trainer loop and the
// learning-rate range test, so that both feed a method exactly the same steps.
#pragma once

#include <vector>

#include "data/batch.h"
#include "dist/communicator.h"
#include "train/method.h"

namespace zoft {

// The step's batch as this rank sees it: on the single-token fast path (train/single_token.h)
// when `single_token_fast_path` and the batch qualifies, else this rank's rows of it. dist: this
// rank forwards its rows only; the batch objective comes from every rank's per-token losses
// gathered in rank order (into `gathered`), computed exactly as one process computes it.
// `b`, `comm` and `gathered` must outlive the step.
StepBatch rank_step_batch(const data::Batch& b, data::LossMode mode, dist::Communicator& comm,
                          std::vector<float>& gathered, bool single_token_fast_path);

}  // namespace zoft
