#include "zo/mezo.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace zoft::zo {

void ZPass::apply(Tensor param, uint32_t param_id, bool decayable) const {
  float d = decayable ? decay : 1.0f;
  apply_z_terms(param, param_id, seed, terms.data(), int(terms.size()), rounding_step, d);
}

void ZPass::apply_at(Tensor part, uint32_t param_id, bool decayable,
                     uint64_t element_offset) const {
  float d = decayable ? decay : 1.0f;
  apply_z_terms(part, param_id, seed, terms.data(), int(terms.size()), rounding_step, d,
                element_offset);
}

MezoSgd::MezoSgd(const MezoOptions& options, MezoState state)
    : options_(options), state_(std::move(state)) {
  int n = options_.samples;
  ZOFT_CHECK(n >= 1 && n <= (1 << 20), "mezo: samples per step must be in [1, 2^20], got {}", n);
  ZOFT_CHECK(options_.estimator != Estimator::Fzoo || n >= 2,
             "fzoo: samples per step must be >= 2 (sigma is the spread of the perturbed "
             "losses), got {}",
             n);
  ZOFT_CHECK(std::isfinite(options_.eps) && options_.eps > 0 && float(options_.eps) > 0,
             "mezo: eps must be a positive float, got {}", options_.eps);
  ZOFT_CHECK(std::isfinite(options_.lr) && options_.lr >= 0, "mezo: lr must be >= 0, got {}",
             options_.lr);
  ZOFT_CHECK(std::isfinite(options_.weight_decay) && options_.weight_decay >= 0,
             "mezo: weight_decay must be >= 0, got {}", options_.weight_decay);
  ZOFT_CHECK(
      state_.pending_grad.empty() || (state_.pending_grad.size() == size_t(n) && state_.step > 0),
      "mezo: resumed state has {} pending gradients at step {}; expected 0 or {} after "
      "step 0 (was the checkpoint written with a different samples setting?)",
      state_.pending_grad.size(), state_.step, n);
  ZOFT_CHECK(std::isfinite(options_.momentum) && options_.momentum >= 0 && options_.momentum < 1,
             "mezo: momentum must be in [0, 1), got {}", options_.momentum);
  ZOFT_CHECK(options_.momentum_window >= 1 && options_.momentum_window <= 1024,
             "mezo: momentum_window must be in [1, 1024], got {}", options_.momentum_window);
  const size_t most = size_t(options_.momentum_window - 1) * size_t(n);
  ZOFT_CHECK(state_.history.size() % size_t(n) == 0 && state_.history.size() <= most &&
                 state_.history.size() / size_t(n) <= state_.step,
             "mezo: resumed state has {} past gradients at step {}; expected a multiple of {} up "
             "to {} (was the checkpoint written with other samples or momentum settings?)",
             state_.history.size(), state_.step, n, most);
  grad_.assign(n, 0.0f);
  recorded_.assign(n, false);
}

double MezoSgd::lr_at(uint64_t step) const {
  return options_.lr * options_.schedule.factor(int64_t(step));
}

// Slot 0 is the update applied at this step (by update() or finish(), never both), slot 1 + k
// forward k's perturbation: every stochastic rounding draws fresh bits.
uint64_t MezoSgd::rounding_step(int slot) const {
  return state_.step * uint64_t(2 * options_.samples + 1) + uint64_t(slot);
}

// -lr_{t-1} g_j / n for every sample of step t-1, scales rounded once from double. Zero terms are
// left out, so that lr = 0 or g = 0 changes no bit (x + 0 would turn -0 into +0).
ZPass MezoSgd::update() const {
  ZPass p;
  p.seed = options_.seed;
  p.rounding_step = rounding_step(0);
  if (state_.pending_grad.empty()) return p;
  uint64_t prev = state_.step - 1;
  double lr = lr_at(prev), n = double(options_.samples);
  for (int j = 0; j < options_.samples; ++j) {
    float scale = float(-lr * double(state_.pending_grad[j]) / n);
    if (scale != 0.0f) p.terms.push_back({prev, uint32_t(j), scale});
  }
  // Momentum: the older directions, beta^age times, newest first.
  const size_t ns = size_t(options_.samples);
  double weight = 1.0;
  for (size_t age = 1; age <= state_.history.size() / ns; ++age) {
    weight *= options_.momentum;
    for (size_t j = 0; j < ns; ++j) {
      float scale = float(-lr * weight * double(state_.history[(age - 1) * ns + j]) / n);
      if (scale != 0.0f) p.terms.push_back({prev - age, uint32_t(j), scale});
    }
  }
  p.decay = float(1.0 - lr * options_.weight_decay);
  return p;
}

void MezoSgd::remember(const std::vector<float>& g) {
  if (options_.momentum_window <= 1) return;
  state_.history.insert(state_.history.begin(), g.begin(), g.end());
  state_.history.resize(std::min(state_.history.size(),
                                 size_t(options_.momentum_window - 1) * size_t(options_.samples)));
}

ZPass MezoSgd::perturbation(int k) const {
  ZOFT_CHECK(k >= 0 && k < num_forwards(), "mezo: forward {} out of range [0, {})", k,
             num_forwards());
  ZPass p;
  p.seed = options_.seed;
  p.rounding_step = rounding_step(1 + k);
  float eps = float(options_.eps);
  if (options_.estimator == Estimator::Fzoo) {
    if (k > 0) p.terms.push_back({state_.step, uint32_t(k - 1), eps});  // forward 0: theta
    return p;
  }
  p.terms.push_back({state_.step, uint32_t(k / 2), k % 2 == 0 ? eps : -eps});
  return p;
}

std::vector<double> MezoSgd::fzoo_grads(const std::vector<double>& losses, double eps) {
  const size_t n = losses.size() - 1;
  double mean = 0;
  for (size_t j = 1; j <= n; ++j) mean += losses[j];
  mean /= double(n);
  double squares = 0;
  for (size_t j = 1; j <= n; ++j) squares += (losses[j] - mean) * (losses[j] - mean);
  const double sigma = std::sqrt(squares / double(n - 1));
  std::vector<double> g(n, 0.0);
  if (sigma == 0) return g;
  for (size_t j = 0; j < n; ++j) g[j] = (losses[j + 1] - losses[0]) / (eps * sigma);
  return g;
}

void MezoSgd::record_forwards(const std::vector<double>& losses) {
  ZOFT_CHECK(losses.size() == size_t(num_forwards()), "mezo: {} losses for {} forwards",
             losses.size(), num_forwards());
  for (size_t k = 0; k < losses.size(); ++k)
    ZOFT_CHECK(std::isfinite(losses[k]),
               "mezo: step {} forward {}: non-finite loss {}; lower lr or eps", state_.step, k,
               losses[k]);
  if (options_.estimator == Estimator::TwoSided) {
    for (int j = 0; j < options_.samples; ++j)
      record(j, losses[size_t(2 * j)], losses[size_t(2 * j + 1)]);
    return;
  }
  const std::vector<double> g = fzoo_grads(losses, options_.eps);
  for (int j = 0; j < options_.samples; ++j) set_grad(j, float(g[size_t(j)]));
}

double MezoSgd::projected_grad(double loss_plus, double loss_minus, double eps) {
  return (loss_plus - loss_minus) / (2.0 * eps);
}

void MezoSgd::record(int sample, double loss_plus, double loss_minus) {
  ZOFT_CHECK(std::isfinite(loss_plus) && std::isfinite(loss_minus),
             "mezo: step {} sample {}: non-finite loss (L+ = {}, L- = {}); lower lr or eps",
             state_.step, sample, loss_plus, loss_minus);
  set_grad(sample, float(projected_grad(loss_plus, loss_minus, options_.eps)));
}

void MezoSgd::set_grad(int sample, float g) {
  ZOFT_CHECK(sample >= 0 && sample < options_.samples, "mezo: sample {} out of range [0, {})",
             sample, options_.samples);
  ZOFT_CHECK(std::isfinite(g), "mezo: step {} sample {}: non-finite projected gradient {}",
             state_.step, sample, g);
  grad_[sample] = g;
  recorded_[sample] = true;
}

void MezoSgd::end_step() {
  for (int j = 0; j < options_.samples; ++j)
    ZOFT_CHECK(recorded_[j], "mezo: end_step at step {} before sample {} was recorded", state_.step,
               j);
  if (!state_.pending_grad.empty()) remember(state_.pending_grad);  // applied by update()
  state_.pending_grad = grad_;
  state_.step += 1;
  recorded_.assign(options_.samples, false);
}

ZPass MezoSgd::finish() {
  for (int j = 0; j < options_.samples; ++j)
    ZOFT_CHECK(!recorded_[j], "mezo: finish in the middle of step {}; call it between steps",
               state_.step);
  ZPass p = update();
  if (!state_.pending_grad.empty()) remember(state_.pending_grad);
  state_.pending_grad.clear();
  return p;
}

}  // namespace zoft::zo
