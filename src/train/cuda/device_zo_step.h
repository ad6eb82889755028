// One MeZO-SGD step with the weights on a CUDA GPU (built with ZOFT_CUDA only): ZoStepper's
// plain order (each pass over all parameters, then a whole forward) over the device copies of
// a DeviceDecoder. The passes are the optimiser's (zo::MezoSgd::update and ::perturbation; a
// device copy of the updated weights restores them exactly after each forward) and each parameter
// keeps its host id, so z (seed, param_id, step, sample) and the rounding bits are the CPU's, bit
// for bit (zo/cuda/perturb.h); only the forward's float rounding differs, so a GPU run tracks a CPU
// run within the forward's tolerance instead of matching it bit for bit.
//
// The host Decoder stays the reference copy for everything else the trainer does (evaluation,
// checkpoints): finish() applies the pending update on the device and copies every parameter
// back into the host tensors, so the checkpoint writer is unchanged.
#pragma once

#include <memory>
#include <vector>

#include "model/parameters.h"
#include "train/zo_step.h"
#include "zo/mezo.h"

namespace zoft {

class DeviceDecoder;
namespace cuda {
class PoolBuffer;
}

class DeviceZoStepper {
 public:
  // `parameters` is the host list (list_parameters after make_trainable, e.g. a ZoStepper's):
  // ids, decay flags and host storage. Uploads the weights; throws when there is no GPU.
  // `model` and `optimizer` must outlive this object.
  DeviceZoStepper(const Decoder& model, const std::vector<ParameterRef>& parameters,
                  zo::MezoSgd& optimizer);
  ~DeviceZoStepper();

  // As ZoStepper::forward_passes, the 2n forwards on the GPU.
  ZoStepResult forward_passes(const TokenBatch& batch, const std::vector<int32_t>& targets,
                              const LossOfTokens& loss_of);
  void end_step() { optimizer_.end_step(); }
  // Applies the pending update on the device, then copies every parameter to the host.
  void finish();

  DeviceDecoder& decoder() { return *decoder_; }

 private:
  struct DeviceParameter {
    Tensor device;  // the DeviceDecoder's copy, updated in place
    Tensor host;    // where finish() copies it back
    uint32_t id = 0;
    bool decay = false;
  };
  void apply_pass(const zo::ZPass& pass);
  // Copies every device parameter into saved_ / back (device to device).
  void save_weights();
  void restore_weights();

  zo::MezoSgd& optimizer_;
  std::unique_ptr<DeviceDecoder> decoder_;
  std::vector<DeviceParameter> params_;
  std::unique_ptr<cuda::PoolBuffer> saved_;  // the updated weights during a step's forwards
};

}  // namespace zoft
