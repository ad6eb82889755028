#include "train/cuda/device_zo_step.h"

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

ZoStepResult DeviceZoStepper::forward_passes(const TokenBatch& batch,
                                             const std::vector<int32_t>& targets,
                                             const LossOfTokens& loss_of) {
  // ZoStepper::plain, step for step: pass k over all parameters, then forward k.
  const int n = optimizer_.options().samples;
  ZoStepResult r;
  r.loss_plus.resize(size_t(n));
  r.loss_minus.resize(size_t(n));
  std::vector<float> token_loss(size_t(batch.rows()));
  for (int k = 0; k < 2 * n + 1; ++k) {
    apply_pass(optimizer_.pass(k));
    if (k == 2 * n) break;
    decoder_->token_losses(batch, targets.data(), token_loss.data());
    (k % 2 == 0 ? r.loss_plus : r.loss_minus)[size_t(k / 2)] = loss_of(token_loss);
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
