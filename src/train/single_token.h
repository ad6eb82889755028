// The train-time single-token fast path (recipe trainer.single_token_fast_path, default on).
//
// A classification batch (MeZO's train_as_classification) has one row per candidate: the
// example's context followed by the candidate. When every candidate is one token, those rows
// differ only in their last token, and a candidate's score is the log-probability of that token
// at the context's last position. So one forward of the contexts (one row per example, one
// position shorter) gives every candidate's score, as evaluation does (train/scoring.h), and
// only the candidates' rows of the LM head are computed. With two candidates this halves the
// rows of every forward of a step.
//
// The loss is batch_loss's kClassification objective: per example, log-sum-exp over its
// candidates' log-probabilities minus the correct one's. The log-softmax normaliser over the
// vocabulary is the same for every candidate of an example and cancels, so the candidate logits
// suffice. It equals the per-candidate path in exact arithmetic, not bit for bit: the forward
// runs on [examples, seq - 1] instead of [rows, seq] (other left padding, other reduction
// tiles), and the per-candidate path rounds each log-probability to float before the double
// sum (tests/train/single_token_test.cc bounds the difference).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "data/batch.h"
#include "dist/communicator.h"
#include "model/decoder.h"
#include "train/method.h"

namespace zoft {

// The contexts of a single-token classification batch and what its loss needs.
struct CandidateBatch {
  TokenBatch contexts;                        // [examples, seq], left-padded
  std::vector<int32_t> ids;                   // the distinct candidate tokens, first-seen order
  std::vector<std::vector<int32_t>> columns;  // per example: each candidate's index in ids
  std::vector<int32_t> labels;                // per example: the correct candidate
};

// The CandidateBatch of a left-padded kClassification batch, or nullopt when some candidate of
// it is longer than one token (the caller then uses the per-candidate rows).
std::optional<CandidateBatch> single_token_batch(const data::Batch& batch);

// The classification objective from candidate logits [examples, ids.size()], in double.
double candidate_loss(const CandidateBatch& batch, const float* logits);

// This rank's step batch on the fast path: its examples' context rows, and a head that reads
// their candidate logits, gathers every rank's (dist: in rank order, so every rank computes the
// loss of the whole batch as one process does) and returns candidate_loss. nullopt when the
// batch is not a single-token classification batch. `global` must outlive the step.
std::optional<StepBatch> single_token_step_batch(const data::Batch& global, data::LossMode mode,
                                                 dist::Communicator& comm);

}  // namespace zoft
