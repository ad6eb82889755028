// MeZO-SGD bookkeeping (Malladi et al. 2023), independent of any model: which perturbation terms
// each in-place pass over the parameters applies, the projected gradients, the pending update.
//
// Step t with n samples is 2n + 1 passes (docs/zo-rng.md section 6); forward k follows pass k:
//   pass 0      pending update of step t-1 (and its weight decay), +eps z_{t,0}   -> forward +0
//   pass 2j+1   -2 eps z_{t,j}                                                    -> forward -j
//   pass 2j     +eps z_{t,j-1} (restore), +eps z_{t,j}            (0 < j < n)    -> forward +j
//   pass 2n     +eps z_{t,n-1} (restore)
// then record() each sample's two losses and end_step(); the update -lr g z waits, pending, for
// pass 0 of the next step (the ZO2 fusion) or for finish().
//
// A plain MeZO trainer runs pass k over all parameters, then the whole forward k. A ZO2 trainer
// runs, per block, passes 0..2n on the block's parameters with the block's part of forward k
// after pass k (2n activations in flight). Each parameter sees the same apply_z_terms calls in
// the same order either way, so the two orders give bit-identical parameters.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "optim/schedule.h"
#include "zo/perturb.h"

namespace zoft::zo {

// train/trainer.cc still names the schedule parser zo::parse_schedule_kind; drop this once it
// says optim:: (the schedules moved to optim/, issue 13).
using optim::parse_schedule_kind;

struct MezoOptions {
  double lr = 1e-6;           // base learning rate, times schedule.factor(t)
  double eps = 1e-3;          // perturbation scale
  int samples = 1;            // n: perturbation directions per step (the update averages them)
  double weight_decay = 0.0;  // decoupled: theta *= 1 - lr_t wd, for decayable parameters only
  optim::Schedule schedule;
  uint64_t seed = 0;  // run seed: the Philox key of every z and rounding bit
};

// What a checkpoint must keep to resume bit-exactly.
struct MezoState {
  uint64_t step = 0;                // the next step to run
  std::vector<float> pending_grad;  // g_{step-1, j}, j < n, not yet applied; empty: none
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
  int num_passes() const { return 2 * options_.samples + 1; }
  // Learning rate of step t: lr * schedule.factor(t).
  double lr_at(uint64_t step) const;

  // Pass k (0 <= k < num_passes()) of the current step; build once, apply to every parameter.
  ZPass pass(int k) const;

  // g = (L+ - L-) / (2 eps), in double.
  static double projected_grad(double loss_plus, double loss_minus, double eps);
  // Sample j's losses of the current step (forwards 2j and 2j + 1).
  void record(int sample, double loss_plus, double loss_minus);
  // Sample j's projected gradient when it was computed elsewhere (e.g. all-reduced over ranks).
  void set_grad(int sample, float g);
  // After every sample is recorded: its update becomes pending, the step counter advances.
  void end_step();

  // The pending update alone (identity when none), to apply to every parameter before a
  // checkpoint, an evaluation or the end of training; clears it.
  ZPass finish();

 private:
  // The pending update's terms and decay factor, at the front of pass 0 or as finish().
  void add_pending(ZPass* pass) const;
  uint64_t rounding_step(int slot) const;

  MezoOptions options_;
  MezoState state_;
  std::vector<float> grad_;  // g of the current step, per sample
  std::vector<bool> recorded_;
};

}  // namespace zoft::zo
