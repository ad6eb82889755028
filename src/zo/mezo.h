// MeZO-SGD bookkeeping (Malladi et al. 2023), independent of any model: the update each step
// applies to the parameters, the perturbation each forward sees, the projected gradients.
//
// Step t with n samples (docs/zo-rng.md section 6):
//   update()          the pending update of step t-1 (and its weight decay), in place, rounded
//                     once to the storage dtype: the only change a step makes to the weights
//   perturbation(k)   forward k (0 <= k < 2n) runs on a copy of the updated weights plus
//                     +eps z_{t,k/2} (k even) or -eps z_{t,k/2} (k odd); the exact weights are
//                     restored from a copy afterwards, so the perturbations leave no trace
// then record() each sample's two losses and end_step(); the update -lr g z waits, pending, for
// the next step's update() (the ZO2 fusion: one pass over each block per step) or for finish().
//
// Perturbing in place and undoing it (+eps, -2eps, +eps) does not restore bf16 weights: each
// stochastically rounded pass moves them by up to an ulp, a random walk that corrupts the model
// whatever the gradient (and f32 weights by float rounding). Restoring from a copy is exact.
//
// Momentum (optim.method mezo-momentum; ZO-SGD-MMT of Zhang et al. 2024, "Revisiting
// Zeroth-Order Optimization for Memory-Efficient LLM Fine-Tuning", arXiv 2402.11592) without a
// momentum buffer: the heavy-ball velocity m_t = sum_s beta^(t-s) g_s z_s is a sum of seeded
// directions, so the update of step t regenerates the last `momentum_window` steps' z from their
// seeds and projected gradients (a few floats of state) instead of storing m (one more copy of
// the model). Truncating the sum at the window drops terms of weight beta^window and below.
//
// FZOO (optim.method fzoo; Dang et al. 2025, "FZOO: Fast Zeroth-Order Optimizer for Fine-Tuning
// Large Language Models towards Adam-Scale Speed", arXiv 2506.09034): n one-sided estimates
// around one unperturbed forward, the step normalised by the spread of the perturbed losses,
//   L_0 = L(theta), L_j = L(theta + eps z_j), sigma = std(L_1..L_n) (n - 1 in the denominator),
//   theta -= lr / n sum_j (L_j - L_0) / (eps sigma) z_j,
// n + 1 forwards a step instead of 2n: forward 0 is the unperturbed one, forward 1 + j sees
// +eps z_j. The same pending-update bookkeeping as MeZO, with g_j = (L_j - L_0) / (eps sigma).
// The paper draws Rademacher z (for its batched CUDA forward); ours stay Gaussian, so every
// kernel and seed of MeZO is reused: the estimator and its normalisation are what differ.
//
// A plain MeZO trainer perturbs all parameters, then runs a whole forward. A ZO2 trainer runs,
// per block, the update and each forward's part on the block's parameters (2n activations in
// flight). Each parameter sees the same apply_z_terms calls either way, so the two orders give
// bit-identical parameters.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "optim/schedule.h"
#include "zo/perturb.h"

namespace zoft::zo {

// How a step's forwards become projected gradients.
enum class Estimator {
  TwoSided,  // MeZO's SPSA: forwards 2j, 2j + 1 at +eps z_j, -eps z_j
  Fzoo,      // forward 0 unperturbed, forward 1 + j at +eps z_j, normalised by sigma (above)
};

struct MezoOptions {
  Estimator estimator = Estimator::TwoSided;
  double lr = 1e-6;           // base learning rate, times schedule.factor(t)
  double eps = 1e-3;          // perturbation scale
  int samples = 1;            // n: perturbation directions per step (the update averages them)
  double weight_decay = 0.0;  // decoupled: theta *= 1 - lr_t wd, for decayable parameters only
  optim::Schedule schedule;
  uint64_t seed = 0;        // run seed: the Philox key of every z and rounding bit
  double momentum = 0.0;    // beta; 0 = MeZO-SGD
  int momentum_window = 1;  // steps whose directions make up an update (1 = the last one only)
};

// What a checkpoint must keep to resume bit-exactly.
struct MezoState {
  uint64_t step = 0;                // the next step to run
  std::vector<float> pending_grad;  // g_{step-1, j}, j < n, not yet applied; empty: none
  // Momentum: the projected gradients of the steps before the pending one (or before `step`
  // when none is pending), newest first, n per step, at most momentum_window - 1 steps.
  std::vector<float> history = {};
};

// One in-place pass: theta = theta * (decayable ? decay : 1) + sum of terms.
struct ZPass {
  uint64_t seed = 0;
  std::vector<ZTerm> terms;
  float decay = 1.0f;
  uint64_t rounding_step = 0;

  bool is_identity() const { return terms.empty() && decay == 1.0f; }
  void apply(Tensor param, uint32_t param_id, bool decayable) const;
  // The same on elements [element_offset, + numel) of the parameter, held by part.
  void apply_at(Tensor part, uint32_t param_id, bool decayable, uint64_t element_offset) const;
};

class MezoSgd {
 public:
  explicit MezoSgd(const MezoOptions& options, MezoState state = {});

  const MezoOptions& options() const { return options_; }
  const MezoState& state() const { return state_; }
  uint64_t step() const { return state_.step; }
  bool has_pending() const { return !state_.pending_grad.empty(); }
  int num_forwards() const { return forwards_per_step(options_.estimator, options_.samples); }
  static int forwards_per_step(Estimator estimator, int samples) {
    return estimator == Estimator::Fzoo ? samples + 1 : 2 * samples;
  }
  // Learning rate of step t: lr * schedule.factor(t).
  double lr_at(uint64_t step) const;

  // The pending update of step t-1 (identity when none), to apply in place to every parameter
  // before the current step's first forward. A zero update (lr or g is 0) is the identity.
  ZPass update() const;
  // Forward k's perturbation (0 <= k < num_forwards()), to apply to the updated weights for
  // that forward only; build once, apply to every parameter.
  ZPass perturbation(int k) const;

  // g = (L+ - L-) / (2 eps), in double.
  static double projected_grad(double loss_plus, double loss_minus, double eps);
  // Sample j's losses of the current step (forwards 2j and 2j + 1).
  void record(int sample, double loss_plus, double loss_minus);
  // Every forward's loss of the current step, in forward order: records each sample's
  // projected gradient under the options' estimator.
  void record_forwards(const std::vector<double>& losses);
  // FZOO's g_j = (L_j - L_0) / (eps sigma) from the n + 1 losses (all 0 when sigma is 0: every
  // perturbed loss equal, no direction to prefer).
  static std::vector<double> fzoo_grads(const std::vector<double>& losses, double eps);
  // Sample j's projected gradient when it was computed elsewhere (e.g. all-reduced over ranks).
  void set_grad(int sample, float g);
  // After every sample is recorded: its update becomes pending, the step counter advances.
  void end_step();

  // update(), to apply to every parameter before a checkpoint, an evaluation or the end of
  // training; clears it. It rounds with the same bits as update() would in the next step, so
  // evaluations and checkpoints do not change the trajectory.
  ZPass finish();

 private:
  uint64_t rounding_step(int slot) const;
  // Puts g (one step's n gradients) at the front of the history, keeping momentum_window - 1.
  void remember(const std::vector<float>& g);

  MezoOptions options_;
  MezoState state_;
  std::vector<float> grad_;  // g of the current step, per sample
  std::vector<bool> recorded_;
};

}  // namespace zoft::zo
