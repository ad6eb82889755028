// optim.method mezo-sgd: MeZO-SGD (forward passes only), on the CPU in the ZO2 or plain order,
// or on a CUDA GPU (placement.device cuda) in the plain order.
#include "train/mezo_method.h"

#include "core/error.h"

#ifdef ZOFT_CUDA
#include "backend/ops.h"
#include "train/cuda/device_zo_step.h"
#include "zo/cuda/perturb.h"
#else
namespace zoft {
class DeviceZoStepper {};  // without CUDA the GPU stepper is never made (the pointer stays null)
}  // namespace zoft
#endif

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
  return o;
}

// placement.device cuda: what the GPU path does not support is refused before any work.
void check_device(const Recipe& r, const dist::Communicator& comm) {
  if (r.placement.device != "cuda") return;
#ifdef ZOFT_CUDA
  if (!cuda::device_available())
    fail(
        "{}: placement.device cuda: no CUDA device found (cudaGetDeviceCount reports none); "
        "use placement.device cpu",
        r.source);
  if (!r.placement.max_memory.empty())
    fail(
        "{}: placement.device cuda: placement.max_memory (offload) is not supported on the GPU "
        "yet",
        r.source);
  if (comm.size() > 1)
    fail("{}: placement.device cuda: one process only (no multi-GPU training yet)", r.source);
  if (r.optim.samples >= zo::cuda::kMaxDeviceTerms)
    fail("{}: placement.device cuda: optim.samples must be < {} on the GPU", r.source,
         zo::cuda::kMaxDeviceTerms);
#else
  (void)comm;
  fail("{}: placement.device {}: this build trains on the cpu only", r.source, r.placement.device);
#endif
}

}  // namespace

MezoMethod::MezoMethod(const Recipe& recipe, Decoder& model, dist::Communicator& comm)
    : optimizer_(mezo_options(recipe)),
      stepper_(model, optimizer_,
               recipe.trainer.schedule == "plain" ? ZoOrder::Plain : ZoOrder::Zo2) {
  check_device(recipe, comm);
#ifdef ZOFT_CUDA
  // The steps run on device copies of the weights, in the plain order (its weights are
  // bit-identical to zo2's on the CPU); finish() brings the host model up to date before every
  // evaluation and checkpoint, which then run as on the CPU.
  if (recipe.placement.device == "cuda")
    gpu_ = std::make_unique<DeviceZoStepper>(model, stepper_.parameters(), optimizer_);
#endif
}

MezoMethod::~MezoMethod() = default;

StepReport MezoMethod::step(const StepBatch& batch) {
  ZoStepResult result = forward_passes(batch);
  StepReport report;
  report.loss = result.mean_loss();
  report.finite = result.finite();
  if (!report.finite)  // no update: every sample's projected gradient is zero
    for (int j = 0; j < optimizer_.options().samples; ++j) optimizer_.set_grad(j, 0.0f);
  optimizer_.end_step();
  const std::vector<float>& g = optimizer_.state().pending_grad;
  report.metrics["train/projected_grad"] = g.empty() ? 0.0 : g[0];
  return report;
}

ZoStepResult MezoMethod::forward_passes(const StepBatch& batch) {
#ifdef ZOFT_CUDA
  if (gpu_) {
    ZOFT_CHECK(!batch.head, "the single-token fast path is not available on the GPU");
    return gpu_->forward_passes(batch.tokens, batch.targets, batch.objective);
  }
#endif
  if (batch.head) return stepper_.forward_passes(batch.tokens, batch.head);
  return stepper_.forward_passes(batch.tokens, batch.targets, batch.objective);
}

void MezoMethod::finish() {
#ifdef ZOFT_CUDA
  if (gpu_) return gpu_->finish();
#endif
  stepper_.finish();
}

nlohmann::json MezoMethod::state() const {
  return {{"mezo",
           {{"step", optimizer_.state().step}, {"pending_grad", optimizer_.state().pending_grad}}}};
}

void MezoMethod::restore(const nlohmann::json& trainer_state, const std::string&) {
  zo::MezoState s;
  s.step = trainer_state.at("mezo").at("step").get<uint64_t>();
  s.pending_grad = trainer_state.at("mezo").at("pending_grad").get<std::vector<float>>();
  // The stepper (and the GPU stepper) hold a reference to optimizer_: assign, do not replace.
  optimizer_ = zo::MezoSgd(optimizer_.options(), s);
}

}  // namespace zoft
