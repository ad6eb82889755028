// optim.method mezo-sgd (train/method.h): MeZO-SGD with the ZO2 block schedule.
#pragma once

#include <memory>

#include "train/method.h"
#include "train/zo_step.h"
#include "zo/mezo.h"

namespace zoft {

class DeviceZoStepper;

class MezoMethod : public TrainingMethod {
 public:
  // Makes the model's weights trainable (owned copies, or the offload runtime's slots).
  MezoMethod(const Recipe& recipe, Decoder& model, dist::Communicator& comm);
  ~MezoMethod() override;

  const char* name() const override { return "mezo-sgd"; }
  StepReport step(const StepBatch& batch) override;
  void finish() override;
  int64_t steps_done() const override { return int64_t(optimizer_.step()); }
  double lr_at(int64_t step) const override { return optimizer_.lr_at(uint64_t(step)); }
  const std::vector<ParameterRef>& parameters() const override { return stepper_.parameters(); }
  nlohmann::json state() const override;
  void restore(const nlohmann::json& trainer_state, const std::string& checkpoint_dir) override;

 private:
  ZoStepResult forward_passes(const StepBatch& batch);

  zo::MezoSgd optimizer_;
  ZoStepper stepper_;
  std::unique_ptr<DeviceZoStepper> gpu_;  // placement.device cuda
};

}  // namespace zoft
