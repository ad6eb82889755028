// RunGuard (train/guards.h): the divergence window, early-stopping patience, the best model and
// its state through a checkpoint.
#include <gtest/gtest.h>

#include <cmath>

#include "train/guards.h"

namespace zoft {
namespace {

Recipe recipe(double divergence_factor, int64_t patience) {
  Recipe r;
  r.trainer.divergence_factor = divergence_factor;
  r.trainer.early_stopping_patience = patience;
  return r;
}

TEST(RunGuard, StopsWhenAWindowsMeanLossExceedsTheFactorTimesTheFirst) {
  RunGuard g(recipe(2.0, 0));
  int64_t step = 0;
  for (int i = 0; i < 10; ++i) g.on_step(++step, 0.7);                 // steps 1-10: mean 0.7
  for (int i = 0; i < 10; ++i) g.on_step(++step, i == 3 ? 5.0 : 0.8);  // 1.22: not yet
  EXPECT_FALSE(g.stopped());
  g.on_step(++step, NAN);  // not counted
  for (int i = 0; i < 9; ++i) g.on_step(++step, 1.0);
  EXPECT_FALSE(g.stopped());
  g.on_step(++step, 4.0);  // steps 22-31 (21 was NaN): mean 1.3
  EXPECT_FALSE(g.stopped());
  for (int i = 0; i < 10; ++i) g.on_step(++step, 1.5);  // 1.5 > 1.4
  ASSERT_TRUE(g.stopped());
  EXPECT_EQ(g.stop_reason(),
            "the training loss diverged: mean 1.5000 over steps 32-41, more than 2 x 0.7000 over "
            "the first 10 steps");
  RunGuard off(recipe(0, 0));
  for (int i = 1; i <= 40; ++i) off.on_step(i, i <= 10 ? 0.1 : 100.0);
  EXPECT_FALSE(off.stopped());
}

TEST(RunGuard, BestIsTheFirstOfTheHighestScoresAndPatienceCountsEvaluationsWithoutOne) {
  RunGuard g(recipe(0, 2));
  EXPECT_FALSE(g.has_best());
  EXPECT_TRUE(g.on_eval(0, 0.5));  // the starting model is a candidate
  EXPECT_TRUE(g.on_eval(10, 0.6));
  EXPECT_FALSE(g.on_eval(20, 0.6));  // a tie keeps the earlier model
  EXPECT_FALSE(g.stopped());
  EXPECT_TRUE(g.on_eval(30, 0.7));  // improvement resets the count
  EXPECT_FALSE(g.on_eval(40, 0.1));
  EXPECT_FALSE(g.stopped());
  EXPECT_FALSE(g.on_eval(50, 0.65));
  ASSERT_TRUE(g.stopped());
  EXPECT_EQ(g.best_step(), 30);
  EXPECT_EQ(g.best_score(), 0.7);
  EXPECT_EQ(g.stop_reason(),
            "the validation metric did not improve in 2 evaluations (best 0.7000 at step 30)");
  RunGuard never(recipe(0, 0));
  for (int i = 0; i < 20; ++i) never.on_eval(i, 0.1);
  EXPECT_FALSE(never.stopped());
}

// A checkpoint's state restores every decision: the same inputs after it give the same stops.
TEST(RunGuard, StateRoundTripsThroughJsonText) {
  RunGuard a(recipe(1.5, 3)), b(recipe(1.5, 3));
  a.on_eval(0, 0.25);
  for (int i = 1; i <= 14; ++i) a.on_step(i, 0.1 * i + 1.0 / 3.0);
  a.on_eval(14, 0.2);
  b.restore(nlohmann::json::parse(a.state().dump()));
  EXPECT_EQ(b.state(), a.state());
  for (int i = 15; i <= 30; ++i) {
    a.on_step(i, 0.2 * i);
    b.on_step(i, 0.2 * i);
  }
  EXPECT_TRUE(a.stopped());
  EXPECT_EQ(b.state(), a.state());
  RunGuard fresh(recipe(1.5, 3));
  fresh.restore(nlohmann::json::object());  // a checkpoint from before the guard
  EXPECT_FALSE(fresh.has_best());
  EXPECT_FALSE(fresh.stopped());
}

}  // namespace
}  // namespace zoft
