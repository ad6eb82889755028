// Training methods behind one interface (recipe optim.method: mezo-sgd | mezo-momentum | fzoo |
// adamw | sgd). The
// trainer loop (train/trainer.cc) owns what every method shares: data order, evaluation,
// checkpoints, metrics, resume, the NaN guard and the ranks. A method owns its optimiser step
// and the state that step needs to resume bit-exactly.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/batch.h"
#include "dist/communicator.h"
#include "model/decoder.h"
#include "model/parameters.h"
#include "train/recipe.h"
#include "train/zo_step.h"

namespace zoft {

// One optimiser step's batch as this rank sees it.
struct StepBatch {
  const data::Batch* global = nullptr;  // every rank's rows
  TokenBatch tokens;                    // this rank's rows of it
  std::vector<int32_t> targets;         // [tokens.rows()]: next-token targets, -1 = not scored
  // The batch objective from this rank's per-token losses (other ranks' are gathered inside):
  // what a forward-only method compares between its perturbed passes.
  LossOfTokens objective;
  // Scored tokens of the global batch: a gradient method's loss is the mean over them, so
  // its gradient does not depend on how the rows are split into ranks or micro-batches.
  int64_t global_scored_tokens = 0;
  // Set by the single-token fast path (train/single_token.h): tokens are one context row per
  // example and the batch objective comes from the final hidden states through this head;
  // targets and objective are then empty. A forward-only method must use it when set.
  LossOfHidden head;
};

struct StepReport {
  double loss = 0;  // the batch objective (a forward-only method: the mean of its passes)
  bool finite = true;
  std::map<std::string, double> metrics;  // extra train/... scalars for the logs
};

class TrainingMethod {
 public:
  virtual ~TrainingMethod() = default;
  virtual const char* name() const = 0;
  // Runs step number steps_done() + 1. A non-finite loss leaves the weights as they were (the
  // step still counts); the trainer then applies its nan_policy.
  virtual StepReport step(const StepBatch& batch) = 0;
  // Brings the model's weights up to date (a pending update) before evaluation or saving.
  virtual void finish() = 0;
  virtual int64_t steps_done() const = 0;
  virtual double lr_at(int64_t step) const = 0;
  // The trained parameters, in list_parameters order (the checkpoint writes them).
  virtual const std::vector<ParameterRef>& parameters() const = 0;
  // State for trainer_state.json (merged at its top level) and files beside the weights
  // (optimizer moments); restore() reads both back from a checkpoint directory.
  virtual nlohmann::json state() const = 0;
  virtual void write_state_files(const std::string& checkpoint_dir) const { (void)checkpoint_dir; }
  virtual void restore(const nlohmann::json& trainer_state, const std::string& checkpoint_dir) = 0;
};

class LoraTraining;  // train/lora_training.h

// The method a recipe names; refuses an unknown name or a setting the method cannot honour.
// `model` must outlive the method (it trains the model's weights in place). With `lora` (recipe
// peft.method lora) the method trains the adapters only, and `lora` must outlive it too.
std::unique_ptr<TrainingMethod> make_training_method(const Recipe& recipe, Decoder& model,
                                                     dist::Communicator& comm,
                                                     LoraTraining* lora = nullptr);

// mezo-sgd, mezo-momentum and fzoo: methods that run forwards only (train/mezo_method.h).
bool is_forward_only(const std::string& method);
// The forwards one step of a forward-only method runs: 2n for MeZO, n + 1 for fzoo.
int zo_forwards_per_step(const Recipe& r);

// The names make_training_method accepts, for messages.
const char* training_method_names();

}  // namespace zoft
