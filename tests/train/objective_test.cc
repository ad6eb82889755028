// The classification objective against its definition in double precision: its sign (a model
// that prefers the correct candidate has a loss below ln(#candidates), lowering the correct
// candidate's token losses lowers it), the label's place among the candidates, and accuracy.
#include "train/objective.h"

#include <gtest/gtest.h>

#include <cmath>

namespace zoft {
namespace {

// Two examples, two candidates each, of 1 and 2 scored tokens; rows in example, candidate order.
data::Batch two_by_two(int32_t label0, int32_t label1) {
  data::Batch b;
  b.rows = 4;
  b.seq = 3;
  b.ids.assign(12, 5);
  b.mask.assign(12, 1);
  // row r scores tokens t where targets >= 0: rows 0, 2 one token, rows 1, 3 two tokens.
  b.targets = {-1, -1, 7, -1, 8, 9, -1, -1, 7, -1, 8, 9};
  b.row_example = {0, 0, 1, 1};
  b.row_candidate = {0, 1, 0, 1};
  b.labels = {label0, label1};
  return b;
}

// -log softmax(scores)[label], scores the negative mean token losses of each candidate.
double reference(const std::vector<double>& scores, int label) {
  double z = 0;
  for (double s : scores) z += std::exp(s);
  return -(scores[size_t(label)] - std::log(z));
}

TEST(Objective, ClassificationLossIsTheCrossEntropyOfTheCorrectCandidate) {
  std::vector<float> loss(12, 0.0f);
  loss[2] = 0.5f;                      // example 0, candidate 0: mean 0.5
  loss[4] = 1.0f, loss[5] = 2.0f;      // example 0, candidate 1: mean 1.5
  loss[8] = 3.0f;                      // example 1, candidate 0: mean 3
  loss[10] = 0.25f, loss[11] = 0.75f;  // example 1, candidate 1: mean 0.5
  for (int32_t l0 : {0, 1})
    for (int32_t l1 : {0, 1}) {
      data::Batch b = two_by_two(l0, l1);
      double want = (reference({-0.5, -1.5}, l0) + reference({-3.0, -0.5}, l1)) / 2;
      EXPECT_NEAR(batch_loss(b, loss, data::LossMode::kClassification), want, 1e-12);
      EXPECT_EQ(batch_accuracy(b, loss).correct, (l0 == 0) + (l1 == 1));
    }
  // Preferring the correct candidates: below chance (ln 2); preferring the wrong ones: above.
  EXPECT_LT(batch_loss(two_by_two(0, 1), loss, data::LossMode::kClassification), std::log(2.0));
  EXPECT_GT(batch_loss(two_by_two(1, 0), loss, data::LossMode::kClassification), std::log(2.0));
}

TEST(Objective, LoweringTheCorrectCandidatesTokenLossLowersTheLoss) {
  data::Batch b = two_by_two(1, 0);
  std::vector<float> loss(12, 1.0f);
  double before = batch_loss(b, loss, data::LossMode::kClassification);
  EXPECT_NEAR(before, std::log(2.0), 1e-12);  // equal scores: chance
  loss[5] = 0.5f;                             // example 0's correct candidate (1) gets likelier
  double after = batch_loss(b, loss, data::LossMode::kClassification);
  EXPECT_LT(after, before);
  loss[8] = 0.5f;  // example 1's correct candidate (0) too
  double both = batch_loss(b, loss, data::LossMode::kClassification);
  EXPECT_LT(both, after);
  loss[2] = 0.1f;  // example 0's wrong candidate gets likelier: the loss rises
  EXPECT_GT(batch_loss(b, loss, data::LossMode::kClassification), both);
}

TEST(Objective, LanguageModelLossIsTheMeanOverScoredTokens) {
  data::Batch b = two_by_two(0, 0);
  std::vector<float> loss(12, 100.0f);  // unscored positions must not count
  for (size_t i = 0; i < 12; ++i)
    if (b.targets[i] >= 0) loss[i] = float(i);
  EXPECT_NEAR(batch_loss(b, loss, data::LossMode::kAnswerOnly), (2 + 4 + 5 + 8 + 10 + 11) / 6.0,
              1e-12);
}

}  // namespace
}  // namespace zoft
