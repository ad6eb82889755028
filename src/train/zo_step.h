// One MeZO-SGD step on a decoder, in either order of DESIGN.md's "One ZO step":
//   plain: each pass over all parameters, then a whole forward;
//   zo2:   block by block, every pass and forward of that block while its weights are at hand
//          (the schedule the offload runtime streams with).
// Both apply the same zo::ZPass calls to each parameter in the same order, so they produce
// bit-identical weights. A forward's perturbation is applied to the weights in place and undone
// by copying the exact bytes back (a copy of one block in zo2, of every parameter in plain), so
// the only lasting change of a step is its update (zo/mezo.h).
#pragma once

#include <functional>
#include <vector>

#include "model/decoder.h"
#include "model/parameters.h"
#include "zo/mezo.h"

namespace zoft {

enum class ZoOrder { Plain, Zo2 };

// Turns a forward's per-token losses [rows * seq] into the scalar the optimiser sees.
using LossOfTokens = std::function<double(const std::vector<float>& token_loss)>;

// Turns a forward's final hidden states [rows, hidden] (after the last block) into the scalar the
// optimiser sees. The usual head is token_loss_head; the single-token fast path
// (train/single_token.h) reads a few candidate logits instead of the per-token losses.
using LossOfHidden = std::function<double(Decoder& model, const float* hidden, int64_t rows)>;

// The LM head's per-token losses at `targets` (model.losses_from_hidden), then loss_of. Both are
// referenced, not copied: they must outlive the returned function.
LossOfHidden token_loss_head(const std::vector<int32_t>& targets, const LossOfTokens& loss_of);

struct ZoStepResult {
  std::vector<double> losses;                 // every forward's, in forward order
  std::vector<double> loss_plus, loss_minus;  // per sample, MeZO's two-sided estimator only
  double mean_loss() const;                   // mean of all the forwards' losses
  bool finite() const;
};

class ZoStepper {
 public:
  // Perturbs every weight of the model (made trainable here), or only `trained` when given
  // (LoRA adapters: their block is the layer they adapt, as list_parameters numbers blocks).
  ZoStepper(Decoder& model, zo::MezoSgd& optimizer, ZoOrder order,
            const std::vector<ParameterRef>* trained = nullptr);

  // Runs the forwards of the optimiser's current step (2n for MeZO, n + 1 for FZOO) and records
  // the losses. When a loss
  // is not finite nothing is recorded: the caller decides (skip_step() or stop).
  ZoStepResult forward_passes(const TokenBatch& batch, const LossOfHidden& head);
  ZoStepResult forward_passes(const TokenBatch& batch, const std::vector<int32_t>& targets,
                              const LossOfTokens& loss_of) {
    return forward_passes(batch, token_loss_head(targets, loss_of));
  }
  // Completes the step with the recorded losses: the update becomes pending.
  void end_step() { optimizer_.end_step(); }
  // Applies the pending update to every parameter (before a checkpoint, evaluation or exit).
  void finish();

  // The general step (any ZO method): applies `update` in place, then runs one forward per
  // perturbation on the updated weights plus that perturbation, restoring the exact updated
  // weights after each; returns the forwards' losses in order. An identity perturbation is a
  // forward of the updated weights themselves.
  std::vector<double> run_forwards(const zo::ZPass& update,
                                   const std::vector<zo::ZPass>& perturbations,
                                   const TokenBatch& batch, const LossOfHidden& head);
  std::vector<double> run_forwards(const zo::ZPass& update,
                                   const std::vector<zo::ZPass>& perturbations,
                                   const TokenBatch& batch, const std::vector<int32_t>& targets,
                                   const LossOfTokens& loss_of) {
    return run_forwards(update, perturbations, batch, token_loss_head(targets, loss_of));
  }

  const std::vector<ParameterRef>& parameters() const { return params_; }

 private:
  void apply_pass(const zo::ZPass& pass, int64_t block);
  // Copies the bytes of block's parameters (every parameter for block < 0) aside / back.
  void save_weights(int64_t block);
  void restore_weights(int64_t block);
  std::vector<double> plain(const zo::ZPass& update, const std::vector<zo::ZPass>& perturbations,
                            const TokenBatch& batch, const LossOfHidden& head);
  std::vector<double> zo2(const zo::ZPass& update, const std::vector<zo::ZPass>& perturbations,
                          const TokenBatch& batch, const LossOfHidden& head);

  Decoder& model_;
  zo::MezoSgd& optimizer_;
  ZoOrder order_;
  std::vector<ParameterRef> params_;
  const ParameterRef* tied_table_ = nullptr;  // the embedding table when the LM head shares it
  DeviceBuffer saved_;  // save_weights' copy (one block, or all in plain), on the model's device
};

}  // namespace zoft
