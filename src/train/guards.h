// The guardrails of a training run (train/trainer.cc): which evaluated model is the best so far,
// and when to stop early: the training loss diverged (a 10-step window's mean above
// trainer.divergence_factor times that of steps 1-10) or the validation metric stopped
// improving (trainer.early_stopping_patience evaluations in a row). Its state goes into every
// checkpoint, so a resumed run decides exactly as an uninterrupted one.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "train/recipe.h"

namespace zoft {

class RunGuard {
 public:
  static constexpr int64_t kWindow = 10;  // steps per training-loss window

  explicit RunGuard(const Recipe& recipe);

  // After step `step` with its training loss (non-finite losses are not counted).
  void on_step(int64_t step, double loss);
  // After an evaluation of the validation set at `step` (0: before training); higher scores
  // are better. Returns true when it is the best so far (ties go to the earlier step).
  bool on_eval(int64_t step, double score);

  bool stopped() const { return !stop_reason_.empty(); }
  const std::string& stop_reason() const { return stop_reason_; }
  bool has_best() const { return best_step_ >= 0; }
  double best_score() const { return best_score_; }
  int64_t best_step() const { return best_step_; }

  nlohmann::json state() const;
  void restore(const nlohmann::json& state);  // state() of a checkpoint; absent keys: fresh

 private:
  double divergence_factor_;
  int64_t patience_;
  double first_window_mean_ = -1;  // -1: steps 1-10 not complete yet
  double window_sum_ = 0;
  int64_t window_count_ = 0, window_first_step_ = 0;
  double best_score_ = 0;
  int64_t best_step_ = -1;
  int64_t evals_without_improvement_ = 0;
  std::string stop_reason_;
};

}  // namespace zoft
