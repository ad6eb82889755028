// optim.method adamw | sgd (train/method.h): gradients by backpropagation (model/backprop.h),
// summed over micro-batches and ranks, clipped by global norm, applied by optim::Optimizer.
#pragma once

#include <vector>

#include "optim/optimizer.h"
#include "train/method.h"

namespace zoft {

class FirstOrderMethod : public TrainingMethod {
 public:
  // Makes the model's weights trainable (owned copies), or with `lora` trains its adapters
  // only; refuses what it cannot train: the GPU, weights streamed from disk, and MeZO's
  // candidate-classification objective.
  FirstOrderMethod(const Recipe& recipe, Decoder& model, dist::Communicator& comm,
                   LoraTraining* lora = nullptr);

  const char* name() const override { return optim::method_name(optimizer_->options().method); }
  StepReport step(const StepBatch& batch) override;
  void finish() override {}  // every update is applied when its step ends
  int64_t steps_done() const override { return steps_; }
  double lr_at(int64_t step) const override { return optimizer_->lr_at(step); }
  const std::vector<ParameterRef>& parameters() const override { return params_; }
  nlohmann::json state() const override;
  void write_state_files(const std::string& checkpoint_dir) const override;
  void restore(const nlohmann::json& trainer_state, const std::string& checkpoint_dir) override;

 private:
  double accumulate_gradients(const StepBatch& batch);
  void sum_over_ranks(double& loss_sum);

  Decoder& model_;
  dist::Communicator& comm_;
  LoraTraining* lora_ = nullptr;
  std::vector<ParameterRef> params_;
  std::vector<Buffer> grads_;
  std::unique_ptr<optim::Optimizer> optimizer_;
  int64_t micro_batches_ = 1;
  double max_grad_norm_ = 0;
  BackwardOptions backward_;
  int64_t steps_ = 0;  // steps run, skipped ones included (the optimizer counts updates)
};

}  // namespace zoft
