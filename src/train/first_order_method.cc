#include "train/first_order_method.h"

#include <cmath>

#include "core/error.h"

namespace zoft {

namespace {

optim::OptimizerOptions optimizer_options(const Recipe& r) {
  optim::OptimizerOptions o;
  o.method = optim::parse_method(r.optim.method);
  o.lr = r.optim.lr;
  o.weight_decay = r.optim.weight_decay;
  o.beta1 = r.optim.adam_beta1;
  o.beta2 = r.optim.adam_beta2;
  o.eps = r.optim.adam_epsilon;
  o.momentum = r.optim.momentum;
  o.schedule.kind = optim::parse_schedule_kind(r.optim.schedule);
  o.schedule.warmup_steps = r.optim.warmup_steps;
  o.schedule.total_steps = r.trainer.steps;
  return o;
}

void check_supported(const Recipe& r, const Decoder& model) {
  const std::string& m = r.optim.method;
  if (r.placement.device != "cpu")
    fail("{}: optim.method {} runs on the cpu only (placement.device {})", r.source, m,
         r.placement.device);
  if (model.residency())
    fail("{}: optim.method {} keeps the whole model in memory: drop placement.max_memory", r.source,
         m);
  if ((!r.task.name.empty() || !r.task.file.empty()) && r.task.train_as_classification)
    fail(
        "{}: optim.method {} trains on token losses: set task.train_as_classification false "
        "(the loss on the answer tokens)",
        r.source, m);
}

}  // namespace

FirstOrderMethod::FirstOrderMethod(const Recipe& r, Decoder& model, dist::Communicator& comm)
    : model_(model), comm_(comm) {
  check_supported(r, model);
  make_trainable(model_);
  params_ = list_parameters(model_);
  grads_ = optim::make_gradients(params_);
  optimizer_ = std::make_unique<optim::Optimizer>(optimizer_options(r), params_);
  micro_batches_ = r.trainer.gradient_accumulation_steps;
  max_grad_norm_ = r.optim.max_grad_norm;
  backward_.checkpoint_blocks = r.trainer.gradient_checkpointing;
}

// This rank's rows in micro-batches; the loss is the global batch's mean over scored tokens,
// so each token's loss weighs 1 / (scored tokens of the whole batch) on every rank.
double FirstOrderMethod::accumulate_gradients(const StepBatch& batch) {
  optim::zero_gradients(grads_);
  const float scale = 1.0f / float(std::max<int64_t>(batch.global_scored_tokens, 1));
  const int64_t rows = batch.tokens.batch, seq = batch.tokens.seq;
  double loss_sum = 0;
  for (int64_t m = 0; m < micro_batches_; ++m) {
    const int64_t begin = rows * m / micro_batches_, end = rows * (m + 1) / micro_batches_;
    if (begin == end) continue;
    loss_sum += model_.loss_and_grad(batch.tokens.slice(begin, end),
                                     batch.targets.data() + begin * seq, scale, grads_, backward_);
  }
  return loss_sum;
}

// dist: gradients and the loss summed over ranks in rank order (every rank the same bits).
void FirstOrderMethod::sum_over_ranks(double& loss_sum) {
  if (comm_.size() == 1) return;
  for (Buffer& g : grads_)
    dist::all_reduce_sum_in_rank_order(comm_, g.as<float>(), g.size() / sizeof(float));
  dist::all_reduce_sum_in_rank_order(comm_, &loss_sum, 1);
}

StepReport FirstOrderMethod::step(const StepBatch& batch) {
  double loss_sum = accumulate_gradients(batch);
  sum_over_ranks(loss_sum);
  ++steps_;
  StepReport report;
  report.loss = loss_sum / double(std::max<int64_t>(batch.global_scored_tokens, 1));
  const double norm = optim::clip_grad_norm(grads_, max_grad_norm_);
  report.metrics["train/grad_norm"] = norm;
  // A NaN or infinite gradient element makes the norm non-finite: no second pass is needed.
  report.finite = std::isfinite(report.loss) && std::isfinite(norm);
  if (report.finite) optimizer_->step(params_, grads_);
  return report;
}

nlohmann::json FirstOrderMethod::state() const {
  return {{"first_order", {{"steps", steps_}, {"updates", optimizer_->step_count()}}}};
}

void FirstOrderMethod::write_state_files(const std::string& checkpoint_dir) const {
  optimizer_->save(checkpoint_dir);
}

void FirstOrderMethod::restore(const nlohmann::json& trainer_state,
                               const std::string& checkpoint_dir) {
  if (!trainer_state.contains("first_order"))
    fail("{}: this checkpoint was written by optim.method {}, not {}", checkpoint_dir,
         trainer_state.value("method", std::string("mezo-sgd")), name());
  optimizer_->load(checkpoint_dir);
  steps_ = trainer_state.at("first_order").at("steps").get<int64_t>();
}

}  // namespace zoft
