// One MeZO-SGD step on a decoder, in either order of DESIGN.md's "One ZO step":
//   plain: each pass over all parameters, then a whole forward;
//   zo2:   block by block, every pass and forward of that block while its weights are at hand
//          (the schedule the offload runtime streams with).
// Both apply the same zo::ZPass calls to each parameter in the same order, so they produce
// bit-identical weights.
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

struct ZoStepResult {
  std::vector<double> loss_plus, loss_minus;  // per sample
  double mean_loss() const;                   // mean of all 2n losses
  bool finite() const;
};

class ZoStepper {
 public:
  ZoStepper(Decoder& model, zo::MezoSgd& optimizer, ZoOrder order);

  // Runs the 2n forwards of the optimiser's current step and records the losses. When a loss
  // is not finite nothing is recorded: the caller decides (skip_step() or stop).
  ZoStepResult forward_passes(const TokenBatch& batch, const std::vector<int32_t>& targets,
                              const LossOfTokens& loss_of);
  // Completes the step with the recorded losses: the update becomes pending.
  void end_step() { optimizer_.end_step(); }
  // Applies the pending update to every parameter (before a checkpoint, evaluation or exit).
  void finish();

  const std::vector<ParameterRef>& parameters() const { return params_; }

 private:
  void apply_pass(const zo::ZPass& pass, int64_t block);
  ZoStepResult plain(const TokenBatch& batch, const std::vector<int32_t>& targets,
                     const LossOfTokens& loss_of, const std::vector<zo::ZPass>& passes);
  ZoStepResult zo2(const TokenBatch& batch, const std::vector<int32_t>& targets,
                   const LossOfTokens& loss_of, const std::vector<zo::ZPass>& passes);

  Decoder& model_;
  zo::MezoSgd& optimizer_;
  ZoOrder order_;
  std::vector<ParameterRef> params_;
  const ParameterRef* tied_table_ = nullptr;  // the embedding table when the LM head shares it
};

}  // namespace zoft
