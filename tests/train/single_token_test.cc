// The train-time single-token fast path (train/single_token.h) gives the loss of the
// per-candidate rows (batch_loss, kClassification) from one forward of the contexts.
//
// Within float tolerance, not bit for bit: the fast path runs the model on [examples, seq - 1]
// instead of [rows, seq] (other left padding, so other attention and GEMM reduction tiles) and
// takes the loss from the candidate logits, where the per-candidate path rounds each candidate's
// log-probability to float first. Both are f32 forwards of the same function, so they agree to a
// few float ulps of the loss; a wrong context row, candidate column, label or softmax would be
// off by the size of a logit difference (on these random models about 1e-2 or more).
#include "train/single_token.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "data/batch.h"
#include "dist/communicator.h"
#include "model/golden_util.h"
#include "train/objective.h"
#include "train/zo_step.h"

namespace zoft::test {
namespace {

// Examples with contexts of different lengths (so rows are left-padded differently) and
// `candidates` one-token candidates each; `labels` cycles through them.
std::vector<data::EncodedExample> examples(int64_t vocab, int count, int candidates,
                                           uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> token(1, int32_t(vocab) - 1);
  std::vector<data::EncodedExample> out;
  for (int i = 0; i < count; ++i) {
    data::EncodedExample e;
    for (int t = 0; t < 3 + (i * 5) % 11; ++t) e.context_ids.push_back(token(rng));
    for (int c = 0; c < candidates; ++c) e.candidate_ids.push_back({int32_t(1 + (7 * c + i) % 9)});
    e.label = i % candidates;
    out.push_back(e);
  }
  return out;
}

data::Batch classification_batch(const std::vector<data::EncodedExample>& ex) {
  data::BatchOptions o;
  o.mode = data::LossMode::kClassification;
  std::vector<size_t> all;
  for (size_t i = 0; i < ex.size(); ++i) all.push_back(i);
  return data::make_batch(ex, all, o);
}

double per_candidate_loss(Decoder& model, const data::Batch& b) {
  TokenBatch tb{b.rows, b.seq, b.ids, b.mask};
  std::vector<float> loss(size_t(tb.rows()));
  model.token_losses(tb, b.targets.data(), loss.data());
  return batch_loss(b, loss, data::LossMode::kClassification);
}

double fast_loss(Decoder& model, const StepBatch& s) {
  KvCache cache(model.config(), s.tokens.batch, s.tokens.seq, true);
  ForwardState state;
  model.begin_forward(s.tokens, cache, state);
  model.run_blocks(state);
  return s.head(model, state.h(), s.tokens.rows());
}

struct Case {
  std::string model;
  DType dtype;
  int candidates;
};

class SingleTokenLoss : public testing::TestWithParam<Case> {};

TEST_P(SingleTokenLoss, EqualsThePerCandidateLoss) {
  const Case& c = GetParam();
  Decoder model = Decoder::load(golden_dir(c.model), c.dtype);
  auto ex = examples(model.config().vocab_size, 6, c.candidates, 7);
  data::Batch b = classification_batch(ex);
  std::optional<StepBatch> s =
      single_token_step_batch(b, data::LossMode::kClassification, dist::world("none"));
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->tokens.batch, 6);        // one row per example, not per candidate
  EXPECT_EQ(s->tokens.seq, b.seq - 1);  // the context alone
  EXPECT_TRUE(s->targets.empty() && !s->objective);
  const double slow = per_candidate_loss(model, b), fast = fast_loss(model, *s);
  // A few ulps of float per logit: 1e-5 in f32. bf16 weights: the same weights, but each
  // forward rounds its activations to bf16 at other tile boundaries, so 1e-3.
  const double tolerance = c.dtype == DType::F32 ? 1e-5 : 1e-3;
  EXPECT_NEAR(fast, slow, tolerance * std::max(1.0, std::abs(slow)));
  EXPECT_GT(slow, 0.0);
}

INSTANTIATE_TEST_SUITE_P(Models, SingleTokenLoss,
                         testing::Values(Case{"llama", DType::F32, 2}, Case{"llama", DType::F32, 4},
                                         Case{"gpt2", DType::F32, 2}, Case{"gemma3", DType::F32, 3},
                                         Case{"qwen3", DType::F32, 2}, Case{"opt", DType::F32, 2},
                                         Case{"llama", DType::BF16, 2}),
                         [](const testing::TestParamInfo<Case>& i) {
                           return i.param.model + "_" + dtype_name(i.param.dtype) + "_c" +
                                  std::to_string(i.param.candidates);
                         });

TEST(SingleToken, WrongLabelOrColumnWouldBeCaught) {
  // The tolerance above is far below what a wrong correct-candidate costs on these models.
  Decoder model = Decoder::load(golden_dir("llama"), DType::F32);
  auto ex = examples(model.config().vocab_size, 6, 2, 7);
  data::Batch b = classification_batch(ex);
  const double slow = per_candidate_loss(model, b);
  for (int32_t& l : b.labels) l = 1 - l;
  EXPECT_GT(std::abs(per_candidate_loss(model, b) - slow), 1e-3);
}

TEST(SingleToken, MultiTokenCandidatesKeepThePerCandidateRows) {
  auto ex = examples(128, 4, 2, 3);
  ex[2].candidate_ids[1] = {5, 6};  // one two-token candidate anywhere in the batch
  data::Batch b = classification_batch(ex);
  EXPECT_FALSE(single_token_batch(b).has_value());
  EXPECT_FALSE(
      single_token_step_batch(b, data::LossMode::kClassification, dist::world("none")).has_value());
}

TEST(SingleToken, OnlyForTheClassificationObjective) {
  auto ex = examples(128, 4, 2, 3);
  data::BatchOptions o;
  o.mode = data::LossMode::kAnswerOnly;  // one row per example with one target: not candidates
  data::Batch b = data::make_batch(ex, {0, 1, 2, 3}, o);
  EXPECT_FALSE(
      single_token_step_batch(b, data::LossMode::kAnswerOnly, dist::world("none")).has_value());
}

TEST(SingleToken, ContextsAndColumns) {
  auto ex = examples(128, 3, 2, 11);
  data::Batch b = classification_batch(ex);
  std::optional<CandidateBatch> c = single_token_batch(b);
  ASSERT_TRUE(c.has_value());
  int64_t longest = 0;
  for (const auto& e : ex) longest = std::max<int64_t>(longest, int64_t(e.context_ids.size()));
  EXPECT_EQ(c->contexts.seq, longest);
  for (size_t e = 0; e < ex.size(); ++e) {
    const auto& ctx = ex[e].context_ids;
    const int64_t pad = longest - int64_t(ctx.size());
    for (int64_t t = 0; t < longest; ++t) {
      const size_t i = size_t(int64_t(e) * longest + t);
      EXPECT_EQ(c->contexts.mask[i], t >= pad);
      if (t >= pad) {
        EXPECT_EQ(c->contexts.ids[i], ctx[size_t(t - pad)]);
      }
    }
    ASSERT_EQ(c->columns[e].size(), 2u);
    for (size_t k = 0; k < 2; ++k)
      EXPECT_EQ(c->ids[size_t(c->columns[e][k])], ex[e].candidate_ids[k][0]);
    EXPECT_EQ(c->labels[e], ex[e].label);
  }
}

// MeZO steps through the stepper: the fast head and the per-candidate head see the same
// perturbed weights, so every forward's loss agrees within the tolerance. (The projected
// gradient divides the loss difference by 2 eps, so the two runs' weights drift apart by
// lr / (2 eps) times the tolerance per step: a small lr keeps that below it over 5 steps.)
TEST(SingleToken, ZoStepsTrackThePerCandidatePath) {
  auto run = [](bool fast) {
    Decoder model = Decoder::load(golden_dir("llama"), DType::F32);
    zo::MezoOptions o;
    o.lr = 1e-4;
    o.eps = 1e-2;
    o.samples = 2;
    o.seed = 5;
    zo::MezoSgd optimizer(o);
    ZoStepper stepper(model, optimizer, ZoOrder::Zo2);
    auto ex = examples(model.config().vocab_size, 8, 2, 9);
    data::Batch b = classification_batch(ex);
    TokenBatch tb{b.rows, b.seq, b.ids, b.mask};
    LossOfTokens objective = [&b](const std::vector<float>& l) {
      return batch_loss(b, l, data::LossMode::kClassification);
    };
    std::optional<StepBatch> s =
        single_token_step_batch(b, data::LossMode::kClassification, dist::world("none"));
    std::vector<double> losses;
    for (int t = 0; t < 5; ++t) {
      ZoStepResult r = fast ? stepper.forward_passes(s->tokens, s->head)
                            : stepper.forward_passes(tb, b.targets, objective);
      losses.insert(losses.end(), r.loss_plus.begin(), r.loss_plus.end());
      losses.insert(losses.end(), r.loss_minus.begin(), r.loss_minus.end());
      stepper.end_step();
    }
    return losses;
  };
  std::vector<double> slow = run(false), fast = run(true);
  ASSERT_EQ(slow.size(), fast.size());
  for (size_t i = 0; i < slow.size(); ++i) EXPECT_NEAR(fast[i], slow[i], 1e-5 * slow[i]) << i;
  EXPECT_NE(slow.front(), slow.back());  // the steps did move the weights
}

}  // namespace
}  // namespace zoft::test
