#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#if defined(__linux__)
#include <malloc.h>
#endif
#include <map>
#include <memory>
#include <optional>

#include "core/error.h"
#include "core/progress.h"
#include "core/thread_pool.h"
#include "data/batch.h"
#include "data/encode.h"
#include "data/records.h"
#include "data/sampling.h"
#include "data/task.h"
#include "dist/communicator.h"
#include "dist/startup.h"
#include "io/json_file.h"
#include "model/lora_io.h"
#include "model/parameters.h"
#include "runtime/gpu_tier.h"
#include "runtime/offload.h"
#include "runtime/plan.h"
#include "text/tokenizer.h"
#include "train/checkpoint.h"
#include "train/fault.h"
#include "train/guards.h"
#include "train/lora_training.h"
#include "train/memory_check.h"
#include "train/method.h"
#include "train/metrics.h"
#include "train/output_lock.h"
#include "train/recipe_changes.h"
#include "train/scoring.h"
#include "train/step_batch.h"
#include "train/train_data.h"

namespace zoft {

namespace fs = std::filesystem;

namespace {

// glibc keeps freed heap pages mapped; hand them back, so that what loading used and freed
// (the tokenizer, parsed JSON) does not count in the training step's peak RSS.
void return_free_memory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

using Clock = std::chrono::steady_clock;

// Checkpoint metrics: higher is better (accuracy, or minus the eval loss). A save without an
// evaluation has no metric.
constexpr double kNotMeasured = std::numeric_limits<double>::quiet_NaN();

double metric_or(const std::map<std::string, double>& metrics, const std::string& name,
                 double otherwise) {
  auto it = metrics.find(name);
  return it == metrics.end() ? otherwise : it->second;
}

// rank 0's metrics files (metrics.jsonl, TensorBoard); other ranks log nothing.
class MetricsLog {
 public:
  MetricsLog(const Recipe& r, const dist::Communicator& comm, const TrainHooks& hooks) {
    if (!comm.is_root()) return;
    on_log_ = hooks.on_log;
    const std::string& out = r.trainer.output_dir;
    if (r.logging.jsonl) jsonl_ = std::make_unique<JsonlWriter>(out + "/metrics.jsonl");
    if (r.logging.tensorboard)
      tensorboard_ = std::make_unique<TensorBoardWriter>(out + "/tensorboard");
  }
  void write(int64_t step, const std::map<std::string, double>& values) {
    if (on_log_) on_log_(step, values);
    if (jsonl_) jsonl_->write(step, values);
    if (!tensorboard_) return;
    for (const auto& [tag, v] : values) tensorboard_->scalar(tag, step, v);
    tensorboard_->flush();
  }

 private:
  std::unique_ptr<JsonlWriter> jsonl_;
  std::unique_ptr<TensorBoardWriter> tensorboard_;
  std::function<void(int64_t, const std::map<std::string, double>&)> on_log_;
};

// placement.max_memory gpu= on placement.device cuda (or sim, the testing aid): the weights
// live in RAM and stream through device slots (runtime/gpu_tier.h).
bool uses_gpu_tier(const Recipe& r) {
  return runtime::is_gpu_tier_device(r.placement.device) && !r.placement.max_memory.empty() &&
         runtime::parse_max_memory(r.placement.max_memory).gpu.has_value();
}

// What the GPU tier trains: every weight with MeZO in the ZO2 order (each streamed block
// crosses the bus once each way per step), in one process.
void check_gpu_tier_training(const Recipe& r, const dist::Communicator& comm) {
  const std::string& f = r.source;
  if (!is_forward_only(r.optim.method))
    fail(
        "{}: placement.max_memory gpu= trains with optim.method mezo-sgd, mezo-momentum or fzoo, "
        "not {}",
        f, r.optim.method);
  if (r.trainer.schedule != "zo2")
    fail("{}: placement.max_memory gpu= streams blocks: use trainer.schedule zo2", f);
  if (!r.peft.method.empty())
    fail("{}: placement.max_memory gpu= trains every weight: drop peft.method", f);
  if (comm.size() > 1)
    fail("{}: placement.max_memory gpu=: one process only (no multi-GPU training yet)", f);
}

void print_offload_stats(const runtime::Offload& offload) {
  runtime::ExecutorStats st = offload.stats();
  std::fprintf(stderr,
               "zoft: offload: read %.1f MB in %lld reads (%.0f MB/s), wrote %.1f MB in %lld "
               "writes (%.0f MB/s), compute waited %.2fs\n",
               double(st.bytes_read) / 1e6, (long long)st.reads,
               double(st.bytes_read) / 1e6 / std::max(st.read_seconds, 1e-9),
               double(st.bytes_written) / 1e6, (long long)st.writes,
               double(st.bytes_written) / 1e6 / std::max(st.write_seconds, 1e-9), st.stall_seconds);
}

// One training run on one rank: the loop every method shares (data order, evaluation,
// checkpoints, metrics, resume, NaN guard); the method (train/method.h) owns the step.
class Run {
 public:
  Run(const Recipe& r, dist::Communicator& comm, dist::Startup& startup, const TrainHooks& hooks)
      : r_(r), comm_(comm), startup_(startup), hooks_(hooks), guard_(r) {}

  TrainSummary train() {
    // dist: ranks on one node share its cores.
    ThreadPool::set_global_threads(dist::threads_per_rank(comm_, int(r_.placement.threads)));
    const std::optional<AvailableMemory> memory = available_memory();  // before loading anything
    start_ = Clock::now();
    summary_.rank = comm_.rank();
    check_batch_split();
    find_checkpoint();
    load_model_and_data();
    check_recipe_memory(r_, *model_, *data_, comm_, memory);
    make_method();
    check_ranks_agree();
    // dist: rank 0 writes all files. On resume, the metrics of the steps after the checkpoint
    // are logged again: drop the first run's rows of them (all rows when starting afresh).
    if (comm_.is_root() && r_.logging.jsonl)
      drop_rows_after(r_.trainer.output_dir + "/metrics.jsonl", summary_.resumed_from);
    log_ = std::make_unique<MetricsLog>(r_, comm_, hooks_);
    if (!resume_) evaluate_before();
    loop();
    method_->finish();
    summary_.steps = method_->steps_done();
    if (offload_) print_offload_stats(*offload_);
    if (gpu_tier_ && comm_.is_root())
      std::fprintf(stderr, "zoft: %s\n", gpu_tier_->report().text().c_str());
    end_with_best();
    summary_.accuracy_before = metric_or(summary_.eval_before, "eval/accuracy", -1);
    summary_.accuracy_after = metric_or(summary_.eval_after, "eval/accuracy", -1);
    summary_.seconds = std::chrono::duration<double>(Clock::now() - start_).count();
    return summary_;
  }

 private:
  // dist: each rank runs batch_size / ranks examples of every global batch.
  void check_batch_split() const {
    if (r_.trainer.batch_size % comm_.size() != 0)
      fail(
          "{}: trainer.batch_size {} does not divide among {} ranks: use a multiple of {} (the "
          "global batch is split evenly)",
          r_.source, r_.trainer.batch_size, comm_.size(), comm_.size());
  }

  // dist: rank 0 alone tidies the output directory and picks the checkpoint that every rank
  // resumes from; the check makes sure that every rank runs the same recipe. It first takes the
  // output directory's lock: a second run on it stops here.
  void find_checkpoint() {
    std::string latest;
    if (comm_.is_root()) {
      lock_.emplace(r_.trainer.output_dir);
      recover_checkpoints(r_.trainer.output_dir);
      latest = latest_checkpoint(r_.trainer.output_dir).value_or("");
    }
    recipe_yaml_ = recipe_to_yaml(r_);
    latest = startup_.check("recipe", dist::Fingerprint().add(recipe_yaml_).value(), latest);
    if (latest.empty()) return;
    resume_ = latest;
    state_ = read_json_file(*resume_ + "/trainer_state.json");
    summary_.resumed_from = state_.at("step").get<int64_t>();
    summary_.final_checkpoint = *resume_;
    if (comm_.is_root())
      std::fprintf(stderr, "zoft: resuming from %s (step %lld)\n", resume_->c_str(),
                   (long long)summary_.resumed_from);
    check_recipe_unchanged(r_.source, r_.trainer.allow_changed_recipe, *resume_, recipe_yaml_,
                           comm_.is_root());
  }

  void load_model_and_data() {
    // A LoRA checkpoint holds the adapter only: the base is read again from model.path.
    const bool from_checkpoint = resume_ && !lora_run();
    model_path_ = from_checkpoint ? *resume_ : r_.model.path;
    if (!fs::is_directory(model_path_))
      fail(
          "{}: model.path must be an HF model directory to train (convert a .gguf with zoft "
          "convert)",
          r_.source);
    dtype_ = parse_dtype(r_.model.dtype);
    // Read before the base is mapped (parsing a 262 k-token vocabulary's JSON briefly takes
    // ~100 MB) and freed once the data is encoded: nothing after needs it.
    auto tokenizer = std::make_unique<text::Tokenizer>(text::Tokenizer::from_file(model_path_));
    // A resumed run reads the checkpoint it saved, random_init or not.
    model_ = std::make_unique<Decoder>(
        r_.model.random_init && !from_checkpoint
            ? Decoder::random_init(model_path_, dtype_, uint64_t(r_.trainer.seed))
            : Decoder::load(model_path_, dtype_));
    data_ = load_train_data(r_, *tokenizer, model_->config());
    tokenizer.reset();
    return_free_memory();
    order_ = std::make_unique<data::DataOrder>(data_->train_size(), uint64_t(r_.trainer.seed));
    config_text_ = checkpoint_config(model_path_, dtype_);
    tokenizer_files_ = read_tokenizer_files(model_path_);
  }

  // Offload (runtime/): with placement.max_memory the layers that do not fit stream from disk;
  // it attaches before the method makes the weights trainable. Null: all resident.
  runtime::OffloadOptions offload_options(bool trainable) const {
    runtime::OffloadOptions o;
    o.max_memory = r_.placement.max_memory;
    if (uses_gpu_tier(r_)) {  // the GPU tier streams from RAM; disk only under a cpu= budget
      std::optional<uint64_t> cpu = runtime::parse_max_memory(r_.placement.max_memory).cpu;
      o.max_memory = cpu ? fmt::format("cpu={}", *cpu) : "";
    }
    o.offload_dir = r_.placement.offload_dir;
    o.prefetch = r_.placement.prefetch;
    o.trainable = trainable;
    return o;
  }

  void make_method() {
    runtime::OffloadOptions o = offload_options(true);
    const int64_t rows =
        r_.trainer.batch_size * std::min(r_.data.max_seq_length, model_->config().max_positions);
    o.activation_bytes =
        runtime::activation_bytes(model_->config(), rows, zo_forwards_per_step(r_), rows);
    offload_ = runtime::Offload::attach(*model_, model_path_, o);
    attach_gpu_tier(true);
    if (lora_run()) lora_ = std::make_unique<LoraTraining>(r_, *model_, resume_.value_or(""));
    method_ = make_training_method(r_, *model_, comm_, lora_.get());
    if (!resume_) return;
    order_->restore(state_.at("data_order"));
    method_->restore(state_, *resume_);
  }

  // The GPU tier over the model (and under its offload, once that streams through it); for
  // training the weights are made trainable first, so that write-backs land in them.
  void attach_gpu_tier(bool trainable) {
    if (!uses_gpu_tier(r_)) return;
    if (model_->residency())
      fail(
          "{}: placement.max_memory {}: the cpu= budget streams layers from disk, which the GPU "
          "tier does not stream through yet: raise cpu= to hold the model (or drop it)",
          r_.source, r_.placement.max_memory);
    if (trainable) {
      check_gpu_tier_training(r_, comm_);
      make_trainable(*model_);
    }
    runtime::GpuTierOptions o;
    o.device = r_.placement.device;
    o.budget = *runtime::parse_max_memory(r_.placement.max_memory).gpu;
    o.prefetch = r_.placement.prefetch;
    o.print = comm_.is_root();
    gpu_tier_ = runtime::GpuTier::attach(*model_, o);
  }

  // dist: the last start-up check: every rank loaded the same data and trainer state.
  void check_ranks_agree() {
    dist::Fingerprint inputs;
    data_->fingerprint(inputs);
    inputs.add(method_->steps_done());
    startup_.check("data and trainer state", inputs.value(), {}, true);
    if (comm_.size() > 1 && comm_.is_root())
      std::fprintf(stderr,
                   "zoft: %d ranks (%s), %lld examples per rank per step, %d threads per rank\n",
                   comm_.size(), comm_.backend().c_str(),
                   (long long)(r_.trainer.batch_size / comm_.size()), ThreadPool::global().size());
  }

  EvalResult evaluate(int64_t step, const char* label) {
    method_->finish();
    EvalResult e = data_->evaluate(*model_, r_.trainer.batch_size, label, comm_);
    log_->write(step, e.metrics);
    if (comm_.is_root())
      std::fprintf(stderr, "zoft: step %lld %s\n", (long long)step, e.summary.c_str());
    return e;
  }

  nlohmann::json trainer_state(int64_t step, double metric) const {
    nlohmann::json s = method_->state();
    s["step"] = step;
    s["seed"] = r_.trainer.seed;
    s["method"] = method_->name();
    s["data_order"] = order_->state();
    s["best_metric"] = guard_.has_best() ? nlohmann::json(guard_.best_score()) : nlohmann::json();
    s["best_checkpoint"] = best_checkpoint_;
    s["last_metric"] = std::isnan(metric) ? nlohmann::json() : nlohmann::json(metric);
    s["guard"] = guard_.state();
    return s;
  }

  std::string checkpoint_path(int64_t step) const {
    return (fs::path(r_.trainer.output_dir) / ("checkpoint-" + std::to_string(step))).string();
  }

  // best: this checkpoint holds the best model so far (recorded in its own trainer state).
  std::string save(int64_t step, double metric, bool best = false) {
    if (best) best_checkpoint_ = checkpoint_path(step);
    method_->finish();
    CheckpointContents c;
    c.parameters = &method_->parameters();
    if (gpu_tier_) c.parameters = &gpu_tier_->synced_homes();  // the weights in host memory
    c.config_json = config_text_;
    if (lora_) {  // a PEFT adapter directory (train/lora_training.h)
      c.weights_file = "adapter_model.safetensors";
      c.config_file = "adapter_config.json";
      c.config_json = lora_->config_json();
    }
    c.extra_files = tokenizer_files_;
    c.trainer_state = trainer_state(step, metric);
    c.recipe_yaml = recipe_yaml_;
    c.write_extra = [this](const std::string& dir) { method_->write_state_files(dir); };
    if (offload_)  // same bytes as a resident run's checkpoint, streamed from the offload file
      c.write_weights = [this](const std::string& path, const std::vector<NamedTensor>& tensors,
                               const std::map<std::string, std::string>& metadata) {
        offload_->write_safetensors(path, tensors, metadata);
      };
    // dist: rank 0 writes; the others wait for it (every rank has applied the same update).
    const std::string& out = r_.trainer.output_dir;
    std::string path = checkpoint_path(step);
    if (comm_.is_root()) {
      path = save_checkpoint(out, step, c);
      prune_checkpoints(out, r_.trainer.save_total_limit, best_checkpoint_);
    }
    comm_.barrier();
    summary_.final_checkpoint = path;
    saved_step_ = step;
    return path;
  }

  // The NaN guard: the method has left the weights as they were; stop or go on.
  void on_non_finite(int64_t step) {
    if (r_.trainer.nan_policy == "stop")
      throw dist::CollectiveError(fmt::format(  // dist: every rank sees the same loss
          "non-finite loss at step {}: stopping (checkpoints written so far are intact; try a "
          "smaller optim.lr or optim.eps)",
          step));
    ++summary_.skipped_steps;
    if (comm_.is_root())
      std::fprintf(stderr, "zoft: step %lld: non-finite loss, step skipped\n", (long long)step);
  }

  void log_step(int64_t step, const StepReport& report) {
    if (r_.logging.log_interval <= 0 ||
        (step % r_.logging.log_interval != 0 && step != r_.trainer.steps))
      return;
    const double seconds = std::chrono::duration<double>(Clock::now() - loop_start_).count();
    std::map<std::string, double> values = report.metrics;
    values["train/loss"] = report.loss;
    values["train/lr"] = method_->lr_at(step - 1);
    values["train/steps_per_s"] = double(step - first_step_) / seconds;
    if (comm_.size() > 1)  // dist: time in collectives, waiting for slower ranks included
      values["dist/comm_s_per_step"] =
          (comm_.comm_seconds() - comm_start_) / double(step - first_step_);
    log_->write(step, values);
  }

  // The validation score at `step`: the held-out split (trainer.validation_fraction), else
  // data.eval (HF's eval_dataset: then its metrics are also the run's eval metrics), else none.
  std::optional<double> validation_score(int64_t step, const char* eval_label) {
    if (data_->has_validation()) {
      method_->finish();
      EvalResult e = data_->validate(*model_, r_.trainer.batch_size, "validation", comm_);
      log_->write(step, e.metrics);
      if (comm_.is_root())
        std::fprintf(stderr, "zoft: step %lld %s\n", (long long)step, e.summary.c_str());
      return e.score;
    }
    if (!data_->has_eval()) return std::nullopt;
    EvalResult e = evaluate(step, eval_label);
    if (step == 0) summary_.eval_before = e.metrics;
    if (step == r_.trainer.steps || guard_.stopped()) summary_.eval_after = e.metrics;
    return e.score;
  }

  // Before the first step: data.eval (trainer.eval_before) and the validation score of the
  // starting model, the first candidate for the best (saved as checkpoint-0 when the run is to
  // end with the best).
  void evaluate_before() {
    const bool needs_validation =
        r_.trainer.load_best_at_end || r_.trainer.early_stopping_patience > 0;
    std::optional<double> score;
    if (r_.trainer.eval_before && data_->has_eval()) {
      EvalResult e = evaluate(0, "eval (before)");
      summary_.eval_before = e.metrics;
      if (!data_->has_validation()) score = e.score;
    }
    if (needs_validation && data_->has_validation()) score = validation_score(0, "");
    if (!needs_validation || !score) return;
    const bool best = guard_.on_eval(0, *score);
    if (r_.trainer.load_best_at_end) save(0, *score, best);
  }

  // Validation at eval_interval and at the end; checkpoints at save_interval, at the end, when
  // stopping early and at every new best (when the run ends with the best).
  void evaluate_and_save(int64_t step) {
    double metric = kNotMeasured;
    bool last = step == r_.trainer.steps || guard_.stopped(), best = false;
    if (r_.trainer.eval_interval > 0 && step % r_.trainer.eval_interval == 0 && !last) {
      if (std::optional<double> score = validation_score(step, "eval")) {
        metric = *score;
        best = guard_.on_eval(step, metric);
        last = guard_.stopped();
      }
    }
    const bool save_interval = r_.trainer.save_interval > 0 && step % r_.trainer.save_interval == 0;
    if (!save_interval && !last && !(best && r_.trainer.load_best_at_end)) return;
    if (last && std::isnan(metric)) {
      if (std::optional<double> score = validation_score(step, "eval (after)")) {
        metric = *score;
        best = guard_.on_eval(step, metric);
      }
    }
    save(step, metric, best);
  }

  // The run's result: the best model by the validation score when trainer.load_best_at_end
  // (loaded from its checkpoint in place of the last one), with data.eval scored on it when the
  // validation set is a separate split.
  void end_with_best() {
    if (guard_.stopped() && comm_.is_root())
      std::fprintf(stderr, "zoft: stopped early at step %lld: %s\n",
                   (long long)method_->steps_done(), guard_.stop_reason().c_str());
    bool switch_model = r_.trainer.load_best_at_end && !best_checkpoint_.empty() &&
                        best_checkpoint_ != summary_.final_checkpoint;
    if (switch_model && lora_run()) {  // its checkpoints hold adapters, not a model to load
      if (comm_.is_root())
        std::fprintf(stderr, "zoft: the best adapter is %s (step %lld); ending with the last\n",
                     best_checkpoint_.c_str(), (long long)guard_.best_step());
      switch_model = false;
    }
    if (!switch_model) {
      if (data_->has_validation() && data_->has_eval() && method_->steps_done() > 0 &&
          summary_.resumed_from < method_->steps_done())
        summary_.eval_after = evaluate(method_->steps_done(), "eval (after)").metrics;
      return;
    }
    if (comm_.is_root())
      std::fprintf(stderr,
                   "zoft: ending with the best model, %s (validation score %.4f at step %lld)\n",
                   best_checkpoint_.c_str(), guard_.best_score(), (long long)guard_.best_step());
    method_.reset();  // it refers to the model; the offload runtime holds its streamed blocks
    gpu_tier_.reset();
    offload_.reset();
    model_ = std::make_unique<Decoder>(Decoder::load(best_checkpoint_, dtype_));
    if (!r_.placement.max_memory.empty())
      offload_ = runtime::Offload::attach(*model_, best_checkpoint_, offload_options(false));
    attach_gpu_tier(false);
    summary_.final_checkpoint = best_checkpoint_;
    if (!data_->has_eval()) return;
    EvalResult e = data_->evaluate(*model_, r_.trainer.batch_size, "eval (best)", comm_);
    log_->write(summary_.steps, e.metrics);
    if (comm_.is_root())
      std::fprintf(stderr, "zoft: best model (step %lld) %s\n", (long long)guard_.best_step(),
                   e.summary.c_str());
    summary_.eval_after = e.metrics;
  }

  bool lora_run() const { return r_.peft.method == "lora"; }

  // TrainHooks::stop_requested: the run ends after `step` with a checkpoint of it, so that running
  // the recipe again resumes from there.
  void stop_at(int64_t step) {
    summary_.stopped = true;
    if (saved_step_ != step) save(step, kNotMeasured);
    if (comm_.is_root())
      std::fprintf(stderr, "zoft: stopped after step %lld; checkpoint %s\n", (long long)step,
                   summary_.final_checkpoint.c_str());
  }

  void loop() {
    if (resume_) {  // a fresh run has its step-0 candidate already
      if (state_.contains("guard")) guard_.restore(state_.at("guard"));
      best_checkpoint_ = state_.value("best_checkpoint", std::string());
    }
    std::optional<Progress> progress;
    if (comm_.is_root()) progress.emplace("train", r_.trainer.steps, "steps");
    comm_start_ = comm_.comm_seconds();
    loop_start_ = Clock::now();
    first_step_ = method_->steps_done();
    std::vector<float> gathered;
    // The GPU stepper reads per-token losses only (train/cuda/device_zo_step.h).
    const bool fast_path = r_.trainer.single_token_fast_path &&
                           (r_.placement.device == "cpu" || r_.placement.device == "sim");
    while (method_->steps_done() < r_.trainer.steps && !guard_.stopped()) {
      const int64_t step = method_->steps_done() + 1;
      data::Batch b = data_->batch(order_->next(size_t(r_.trainer.batch_size)));
      StepReport report = method_->step(
          rank_step_batch(b, data_->batch_options().mode, comm_, gathered, fast_path));
      fault_point("step", step);
      if (!report.finite) on_non_finite(step);
      summary_.final_train_loss = report.loss;
      guard_.on_step(step, report.loss);
      if (progress) progress->update(step, fmt::format("loss {:.4f}", report.loss));
      log_step(step, report);
      evaluate_and_save(step);
      if (hooks_.stop_requested && hooks_.stop_requested()) {
        stop_at(step);
        break;
      }
    }
    if (progress) progress->finish();
  }

  const Recipe& r_;
  dist::Communicator& comm_;
  dist::Startup& startup_;
  const TrainHooks& hooks_;
  TrainSummary summary_;
  Clock::time_point start_, loop_start_;
  double comm_start_ = 0;
  int64_t first_step_ = 0;
  int64_t saved_step_ = -1;  // the step of the last checkpoint this run saved
  std::string recipe_yaml_, model_path_, config_text_;
  std::optional<OutputLock> lock_;  // rank 0: held for the whole run
  std::optional<std::string> resume_;
  nlohmann::json state_ = nlohmann::json::object();
  DType dtype_ = DType::F32;
  std::unique_ptr<Decoder> model_;
  std::unique_ptr<TrainData> data_;
  std::unique_ptr<data::DataOrder> order_;
  std::unique_ptr<runtime::Offload> offload_;
  std::unique_ptr<runtime::GpuTier> gpu_tier_;  // after offload_: detaches before it
  std::unique_ptr<LoraTraining> lora_;          // peft.method lora: the adapters the method trains
  std::unique_ptr<TrainingMethod> method_;
  std::unique_ptr<MetricsLog> log_;
  std::vector<std::pair<std::string, std::string>> tokenizer_files_;
  RunGuard guard_;
  std::string best_checkpoint_;
};

// Runs on every rank of the job (one process: comm has one rank). dist: start-up ends at
// startup.check(..., last = true); before it, a failure on any rank stops every rank cleanly.
TrainSummary train_ranks(const Recipe& r, dist::Communicator& comm, dist::Startup& startup,
                         const TrainHooks& hooks) {
  return Run(r, comm, startup, hooks).train();
}

}  // namespace

// dist: every rank of the job (docs/dist.md) runs the same loop on its shard of each batch.
TrainSummary train(const Recipe& r, const TrainHooks& hooks) {
  dist::Communicator& comm = dist::world(r.dist.backend);
  return dist::run(comm,
                   [&](dist::Startup& startup) { return train_ranks(r, comm, startup, hooks); });
}

double evaluate_task_accuracy(const std::string& model_path, const std::string& task_name,
                              const std::string& data_path, int64_t max_examples,
                              int64_t max_seq_length, int64_t batch_size, const std::string& dtype,
                              const std::string& adapter_dir, const PlaceModel& place) {
  text::Tokenizer tokenizer = text::Tokenizer::from_file(model_path);
  Decoder model = Decoder::load(model_path, parse_dtype(dtype));
  std::unique_ptr<LoraAdapters> adapter;
  if (!adapter_dir.empty()) adapter = attach_peft_adapter(model, adapter_dir);
  std::shared_ptr<void> placed = place ? place(model) : nullptr;
  data::Task task = data::Task::load(task_name);
  data::EncodeOptions encode;
  encode.max_length = std::min(max_seq_length, model.config().max_positions);
  auto examples = load_task_examples(task, data_path, max_examples, 0, 1, tokenizer, encode);
  int64_t correct =
      count_correct(model, examples, batch_size, data::pad_token_for(tokenizer), "eval");
  return examples.empty() ? 0.0 : double(correct) / double(examples.size());
}

}  // namespace zoft
