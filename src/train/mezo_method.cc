// optim.method mezo-sgd: MeZO-SGD (forward passes only) in the ZO2 or plain order, on the device
// of placement.device (the same ZoStepper; the perturbation runs where the weights are).
#include "train/mezo_method.h"

#include "core/error.h"
#include "runtime/gpu_tier.h"
#include "runtime/plan.h"
#include "train/lora_training.h"

namespace zoft {

namespace {

zo::MezoOptions mezo_options(const Recipe& r) {
  zo::MezoOptions o;
  o.lr = r.optim.lr;
  o.eps = r.optim.eps;
  o.samples = int(r.optim.samples);
  o.weight_decay = r.optim.weight_decay;
  o.schedule.kind = optim::parse_schedule_kind(r.optim.schedule);
  o.schedule.warmup_steps = r.optim.warmup_steps;
  o.schedule.total_steps = r.trainer.steps;
  o.seed = uint64_t(r.trainer.seed);
  if (r.optim.method == "fzoo") o.estimator = zo::Estimator::Fzoo;
  if (r.optim.method == "mezo-momentum") {
    o.momentum = r.optim.momentum;
    o.momentum_window = int(r.optim.momentum_window);
  }
  return o;
}

// The model the steps run on: the trainer's (cpu), or a copy placed on the recipe's device, made
// from the trainable model so that a tied LM head stays one tensor there. What a placed run does
// not support is refused before any work.
std::unique_ptr<Decoder> place(const Recipe& r, Decoder& model, const dist::Communicator& comm) {
  // placement.max_memory gpu=: the trainer's GPU tier streams the model's own weights.
  if (runtime::is_gpu_tier_device(r.placement.device) && !r.placement.max_memory.empty() &&
      runtime::parse_max_memory(r.placement.max_memory).gpu)
    return nullptr;
  const Device device = parse_device(r.placement.device);
  if (device == Device::CPU) return nullptr;
  if (!ops::available(device))
    fail("{}: placement.device {}: {}; use placement.device cpu", r.source, r.placement.device,
         ops::unavailable_reason(device));
  if (!r.placement.max_memory.empty())
    fail("{}: placement.device {}: placement.max_memory {} needs a gpu= budget (e.g. gpu=8GiB,{})",
         r.source, r.placement.device, r.placement.max_memory, r.placement.max_memory);
  if (comm.size() > 1)
    fail("{}: placement.device {}: one process only (no multi-GPU training yet)", r.source,
         r.placement.device);
  if (r.optim.method == "mezo-momentum" &&
      r.optim.samples * r.optim.momentum_window > zo::kMaxDeviceTerms)
    fail(
        "{}: placement.device {}: optim.samples x optim.momentum_window must be <= {} there (an "
        "update's terms travel as a kernel argument)",
        r.source, r.placement.device, zo::kMaxDeviceTerms);
  make_trainable(model);
  return std::make_unique<Decoder>(model.to_device(device));
}

}  // namespace

// On a placed model, finish() brings the trainer's model up to date before every evaluation and
// checkpoint, which then run as on the CPU.
MezoMethod::MezoMethod(const Recipe& recipe, Decoder& model, dist::Communicator& comm,
                       LoraTraining* lora)
    : optimizer_(mezo_options(recipe)),
      lora_(lora),
      comm_rank_(comm.rank()),
      placed_(place(recipe, model, comm)),
      stepper_(placed_ ? *placed_ : model, optimizer_,
               recipe.trainer.schedule == "plain" ? ZoOrder::Plain : ZoOrder::Zo2,
               lora ? &lora->parameters() : nullptr) {
  host_parameters_ = placed_ ? list_parameters(model) : stepper_.parameters();
}

MezoMethod::~MezoMethod() = default;

StepReport MezoMethod::step(const StepBatch& batch) {
  // LoRA dropout: the same mask in every pass of the step (one per rank).
  if (lora_) lora_->begin_pass(optimizer_.step() + 1, uint32_t(comm_rank_ << 16));
  ZoStepResult result = forward_passes(batch);
  if (lora_) lora_->end_pass();
  StepReport report;
  // fzoo's forward 0 is the loss at the weights themselves.
  const bool fzoo = optimizer_.options().estimator == zo::Estimator::Fzoo;
  report.loss = fzoo ? result.losses[0] : result.mean_loss();
  report.finite = result.finite();
  if (!report.finite)  // no update: every sample's projected gradient is zero
    for (int j = 0; j < optimizer_.options().samples; ++j) optimizer_.set_grad(j, 0.0f);
  optimizer_.end_step();
  const std::vector<float>& g = optimizer_.state().pending_grad;
  report.metrics["train/projected_grad"] = g.empty() ? 0.0 : g[0];
  return report;
}

ZoStepResult MezoMethod::forward_passes(const StepBatch& batch) {
  if (batch.head) return stepper_.forward_passes(batch.tokens, batch.head);
  return stepper_.forward_passes(batch.tokens, batch.targets, batch.objective);
}

void MezoMethod::finish() {
  stepper_.finish();
  if (!placed_) return;
  // The same list order on both sides (list_parameters of a placed copy), one tied table each.
  const std::vector<ParameterRef>& placed = stepper_.parameters();
  for (size_t i = 0; i < placed.size(); ++i)
    ops::download(placed[i].tensor.device, host_parameters_[i].tensor.data, placed[i].tensor.data,
                  host_parameters_[i].tensor.nbytes());
}

nlohmann::json MezoMethod::state() const {
  return {{"mezo",
           {{"step", optimizer_.state().step},
            {"pending_grad", optimizer_.state().pending_grad},
            {"history", optimizer_.state().history}}}};
}

void MezoMethod::restore(const nlohmann::json& trainer_state, const std::string&) {
  zo::MezoState s;
  s.step = trainer_state.at("mezo").at("step").get<uint64_t>();
  s.pending_grad = trainer_state.at("mezo").at("pending_grad").get<std::vector<float>>();
  s.history = trainer_state.at("mezo").value("history", std::vector<float>());
  // The stepper holds a reference to optimizer_: assign, do not replace.
  optimizer_ = zo::MezoSgd(optimizer_.options(), s);
}

}  // namespace zoft
