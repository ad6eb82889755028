#include "train/guards.h"

#include <cmath>

#include "core/error.h"

namespace zoft {

RunGuard::RunGuard(const Recipe& recipe)
    : divergence_factor_(recipe.trainer.divergence_factor),
      patience_(recipe.trainer.early_stopping_patience) {}

void RunGuard::on_step(int64_t step, double loss) {
  if (!std::isfinite(loss)) return;  // the NaN guard (trainer.nan_policy) handles those
  if (window_count_ == 0) window_first_step_ = step;
  window_sum_ += loss;
  if (++window_count_ < kWindow) return;
  const double mean = window_sum_ / double(kWindow);
  window_sum_ = 0;
  window_count_ = 0;
  if (first_window_mean_ < 0) {
    first_window_mean_ = mean;
    return;
  }
  if (divergence_factor_ > 0 && mean > divergence_factor_ * first_window_mean_ && !stopped())
    stop_reason_ = fmt::format(
        "the training loss diverged: mean {:.4f} over steps {}-{}, more than {} x {:.4f} over "
        "the first {} steps",
        mean, window_first_step_, step, divergence_factor_, first_window_mean_, kWindow);
}

bool RunGuard::on_eval(int64_t step, double score) {
  if (!has_best() || score > best_score_) {
    best_score_ = score;
    best_step_ = step;
    evals_without_improvement_ = 0;
    return true;
  }
  ++evals_without_improvement_;
  if (patience_ > 0 && evals_without_improvement_ >= patience_ && !stopped())
    stop_reason_ = fmt::format(
        "the validation metric did not improve in {} evaluations (best {:.4f} at step {})",
        evals_without_improvement_, best_score_, best_step_);
  return false;
}

nlohmann::json RunGuard::state() const {
  return {{"first_window_mean", first_window_mean_},
          {"window_sum", window_sum_},
          {"window_count", window_count_},
          {"window_first_step", window_first_step_},
          {"best_score", best_score_},
          {"best_step", best_step_},
          {"evals_without_improvement", evals_without_improvement_},
          {"stop_reason", stop_reason_}};
}

void RunGuard::restore(const nlohmann::json& s) {
  first_window_mean_ = s.value("first_window_mean", -1.0);
  window_sum_ = s.value("window_sum", 0.0);
  window_count_ = s.value("window_count", int64_t(0));
  window_first_step_ = s.value("window_first_step", int64_t(0));
  best_score_ = s.value("best_score", 0.0);
  best_step_ = s.value("best_step", int64_t(-1));
  evals_without_improvement_ = s.value("evals_without_improvement", int64_t(0));
  stop_reason_ = s.value("stop_reason", std::string());
}

}  // namespace zoft
