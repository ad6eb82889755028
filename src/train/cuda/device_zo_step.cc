#include "train/cuda/device_zo_step.h"

#include "backend/cuda/check.h"
#include "backend/cuda/context.h"
#include "model/cuda/device_decoder.h"
#include "zo/cuda/perturb.h"

namespace zoft {

DeviceZoStepper::DeviceZoStepper(const Decoder& model, const std::vector<ParameterRef>& parameters,
                                 zo::MezoSgd& optimizer)
    : optimizer_(optimizer), decoder_(std::make_unique<DeviceDecoder>(model)) {
  // The host list has a tied table once (the LM head is the same storage), and the device
  // decoder uploads it once, so the table gets one z per step on both sides.
  for (const ParameterRef& p : parameters)
    params_.push_back({decoder_->device_tensor(p.tensor), p.tensor, p.id, p.decay});
}

DeviceZoStepper::~DeviceZoStepper() = default;

void DeviceZoStepper::apply_pass(const zo::ZPass& pass) {
  // zo::ZPass::apply with the device kernel: the same terms, decay and rounding step.
  for (const DeviceParameter& p : params_)
    zo::cuda::apply_z_terms(p.device, p.id, pass.seed, pass.terms.data(), int(pass.terms.size()),
                            pass.rounding_step, p.decay ? pass.decay : 1.0f);
}

void DeviceZoStepper::save_weights() {
  size_t bytes = 0;
  for (const DeviceParameter& p : params_) bytes += p.device.nbytes();
  if (!saved_) saved_ = std::make_unique<cuda::PoolBuffer>(cuda::context().pool, bytes);
  uint8_t* at = saved_->as<uint8_t>();
  for (const DeviceParameter& p : params_) {
    ZOFT_CUDA_CHECK(cudaMemcpyAsync(at, p.device.data, p.device.nbytes(), cudaMemcpyDeviceToDevice,
                                    cuda::context().stream));
    at += p.device.nbytes();
  }
}

void DeviceZoStepper::restore_weights() {
  const uint8_t* at = saved_->as<uint8_t>();
  for (const DeviceParameter& p : params_) {
    ZOFT_CUDA_CHECK(cudaMemcpyAsync(p.device.data, at, p.device.nbytes(), cudaMemcpyDeviceToDevice,
                                    cuda::context().stream));
    at += p.device.nbytes();
  }
}

ZoStepResult DeviceZoStepper::forward_passes(const TokenBatch& batch,
                                             const std::vector<int32_t>& targets,
                                             const LossOfTokens& loss_of) {
  // ZoStepper::plain, step for step: the update over all parameters, then per forward its
  // perturbation, the whole forward and the exact weights copied back.
  const int n = optimizer_.options().samples;
  ZoStepResult r;
  std::vector<float> token_loss(size_t(batch.rows()));
  apply_pass(optimizer_.update());
  save_weights();
  for (int k = 0; k < 2 * n; ++k) {
    apply_pass(optimizer_.perturbation(k));
    decoder_->token_losses(batch, targets.data(), token_loss.data());
    (k % 2 == 0 ? r.loss_plus : r.loss_minus).push_back(loss_of(token_loss));
    restore_weights();
  }
  if (r.finite())
    for (int j = 0; j < n; ++j)
      optimizer_.record(j, r.loss_plus[size_t(j)], r.loss_minus[size_t(j)]);
  return r;
}

void DeviceZoStepper::finish() {
  apply_pass(optimizer_.finish());
  for (const DeviceParameter& p : params_)
    cuda::copy_to_host(p.host.data, p.device.data, p.host.nbytes());
}

}  // namespace zoft
