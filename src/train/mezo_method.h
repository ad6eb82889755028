// optim.method mezo-sgd (train/method.h): MeZO-SGD with the ZO2 block schedule; mezo-momentum:
// the same with seeded heavy-ball momentum (zo/mezo.h), no extra memory; fzoo: FZOO's normalised
// one-sided estimates (zo/mezo.h), n + 1 forwards a step.
#pragma once

#include <memory>

#include "train/method.h"
#include "train/zo_step.h"
#include "zo/mezo.h"

namespace zoft {

class MezoMethod : public TrainingMethod {
 public:
  // Makes the model's weights trainable (owned copies, or the offload runtime's slots), or with
  // `lora` perturbs and updates its adapters only (MeZO-LoRA).
  MezoMethod(const Recipe& recipe, Decoder& model, dist::Communicator& comm,
             LoraTraining* lora = nullptr);
  ~MezoMethod() override;

  const char* name() const override {
    if (optimizer_.options().estimator == zo::Estimator::Fzoo) return "fzoo";
    return optimizer_.options().momentum > 0 ? "mezo-momentum" : "mezo-sgd";
  }
  StepReport step(const StepBatch& batch) override;
  void finish() override;
  int64_t steps_done() const override { return int64_t(optimizer_.step()); }
  double lr_at(int64_t step) const override { return optimizer_.lr_at(uint64_t(step)); }
  const std::vector<ParameterRef>& parameters() const override { return host_parameters_; }
  nlohmann::json state() const override;
  void restore(const nlohmann::json& trainer_state, const std::string& checkpoint_dir) override;

 private:
  ZoStepResult forward_passes(const StepBatch& batch);

  zo::MezoSgd optimizer_;
  LoraTraining* lora_ = nullptr;
  int comm_rank_ = 0;
  // placement.device other than cpu: the copy of the model the steps run on (Decoder::to_device);
  // null on the CPU, where the steps run on the trainer's model itself.
  std::unique_ptr<Decoder> placed_;
  ZoStepper stepper_;
  std::vector<ParameterRef> host_parameters_;  // the trainer's model's (checkpoints read them)
};

}  // namespace zoft
