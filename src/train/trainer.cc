#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "core/error.h"
#include "core/progress.h"
#include "core/thread_pool.h"
#include "data/batch.h"
#include "data/encode.h"
#include "data/records.h"
#include "data/sampling.h"
#include "data/task.h"
#include "io/json_file.h"
#include "text/tokenizer.h"
#include "train/checkpoint.h"
#include "train/fault.h"
#include "train/metrics.h"
#include "train/objective.h"
#include "train/zo_step.h"

namespace zoft {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open for reading", path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Examples of a task from a data file, optionally a seeded subset of `limit` of them.
std::vector<data::EncodedExample> load_examples(const data::Task& task, const std::string& path,
                                                int64_t limit, int64_t k_shot, uint64_t seed,
                                                const text::Tokenizer& tokenizer,
                                                const data::EncodeOptions& encode) {
  std::vector<data::TaskExample> examples = task.make_examples(data::read_records(path));
  if (examples.empty()) fail("{}: no examples", path);
  std::vector<size_t> pick;
  if (k_shot > 0) {
    pick = data::k_shot_indices(examples, size_t(k_shot), seed);
  } else if (limit > 0 && size_t(limit) < examples.size()) {
    pick = data::permutation(examples.size(), seed);
    pick.resize(size_t(limit));
  }
  if (!pick.empty()) examples = data::select(examples, pick);
  return data::encode_examples(examples, tokenizer, encode);
}

TokenBatch token_batch(const data::Batch& b) {
  TokenBatch t;
  t.batch = b.rows;
  t.seq = b.seq;
  t.ids = b.ids;
  t.mask = b.mask;
  return t;
}

// Accuracy by candidate scoring, `batch_size` examples (all their candidates) per forward.
double accuracy(Decoder& model, const std::vector<data::EncodedExample>& examples,
                int64_t batch_size, int32_t pad_id, const char* label) {
  data::BatchOptions options;
  options.mode = data::LossMode::kClassification;
  options.pad_id = pad_id;
  Accuracy total;
  Progress progress(label, int64_t(examples.size()), "examples");
  for (size_t begin = 0; begin < examples.size(); begin += size_t(batch_size)) {
    std::vector<size_t> idx;
    for (size_t i = begin; i < std::min(examples.size(), begin + size_t(batch_size)); ++i) idx.push_back(i);
    data::Batch b = data::make_batch(examples, idx, options);
    TokenBatch tb = token_batch(b);
    std::vector<float> loss(size_t(tb.rows()));
    model.token_losses(tb, b.targets.data(), loss.data());
    Accuracy a = batch_accuracy(b, loss);
    total.correct += a.correct;
    total.total += a.total;
    progress.update(total.total);
  }
  progress.finish();
  return total.total ? double(total.correct) / double(total.total) : 0.0;
}

// config.json of the trained model: the source's, with the storage dtype recorded.
std::string checkpoint_config(const std::string& model_dir, DType dtype) {
  nlohmann::json config = read_json_file(model_dir + "/config.json");
  std::string name = dtype == DType::BF16 ? "bfloat16" : "float32";
  config["dtype"] = name;
  config["torch_dtype"] = name;
  return config.dump(2) + "\n";
}

// A crash between the two renames of save_checkpoint leaves ".old-checkpoint-N" without
// "checkpoint-N": put it back. Temporary directories of unfinished saves are removed.
void recover_checkpoints(const std::string& output_dir) {
  std::error_code ec;
  if (!fs::is_directory(output_dir, ec)) return;
  for (const auto& entry : fs::directory_iterator(output_dir, ec)) {
    std::string name = entry.path().filename().string();
    if (name.rfind(".old-", 0) == 0) {
      fs::path original = entry.path().parent_path() / name.substr(5);
      if (!fs::exists(original)) fs::rename(entry.path(), original, ec);
      else fs::remove_all(entry.path(), ec);
    } else if (name.rfind(".tmp-", 0) == 0) {
      fs::remove_all(entry.path(), ec);
    }
  }
}

zo::MezoOptions mezo_options(const Recipe& r) {
  zo::MezoOptions o;
  o.lr = r.optim.lr;
  o.eps = r.optim.eps;
  o.samples = int(r.optim.samples);
  o.weight_decay = r.optim.weight_decay;
  o.schedule.kind = zo::parse_schedule_kind(r.optim.schedule);
  o.schedule.warmup_steps = r.optim.warmup_steps;
  o.schedule.total_steps = r.trainer.steps;
  o.seed = uint64_t(r.trainer.seed);
  return o;
}

}  // namespace

TrainSummary train(const Recipe& r) {
  if (r.placement.device != "cpu") fail("{}: placement.device {}: this build trains on the cpu only", r.source, r.placement.device);
  if (r.dist.backend != "none") fail("{}: dist.backend {}: not available in this build", r.source, r.dist.backend);
  ThreadPool::set_global_threads(int(r.placement.threads));
  auto start = Clock::now();
  TrainSummary summary;
  const std::string& out = r.trainer.output_dir;
  recover_checkpoints(out);
  std::optional<std::string> resume = latest_checkpoint(out);
  nlohmann::json state = nlohmann::json::object();
  if (resume) {
    state = read_json_file(*resume + "/trainer_state.json");
    summary.resumed_from = state.at("step").get<int64_t>();
    std::fprintf(stderr, "zoft: resuming from %s (step %lld)\n", resume->c_str(), (long long)summary.resumed_from);
  }
  const std::string model_path = resume ? *resume : r.model.path;
  if (!fs::is_directory(model_path))
    fail("{}: model.path must be an HF model directory to train (convert a .gguf with zoft convert)", r.source);

  const DType dtype = parse_dtype(r.model.dtype);
  text::Tokenizer tokenizer = text::Tokenizer::from_file(model_path);
  Decoder model = Decoder::load(model_path, dtype);
  data::Task task = data::Task::load(r.task.file.empty() ? r.task.name : r.task.file);
  data::EncodeOptions encode;
  encode.max_length = std::min(r.data.max_seq_length, model.config().max_positions);
  encode.truncate = r.data.truncate;
  const uint64_t seed = uint64_t(r.trainer.seed);
  auto train_set = load_examples(task, r.data.train, r.data.train_samples, r.task.k_shot, seed, tokenizer, encode);
  std::vector<data::EncodedExample> eval_set;
  if (!r.data.eval.empty())
    eval_set = load_examples(task, r.data.eval, r.data.eval_samples, 0, seed + 1, tokenizer, encode);

  const int32_t pad_id = data::pad_token_for(tokenizer);
  data::BatchOptions batch_options;
  batch_options.mode = r.task.train_as_classification ? data::LossMode::kClassification : data::LossMode::kAnswerOnly;
  batch_options.pad_id = pad_id;
  data::DataOrder order(train_set.size(), seed);
  zo::MezoState mezo_state;
  if (resume) {
    order.restore(state.at("data_order"));
    mezo_state.step = state.at("mezo").at("step").get<uint64_t>();
    mezo_state.pending_grad = state.at("mezo").at("pending_grad").get<std::vector<float>>();
  }
  zo::MezoSgd optimizer(mezo_options(r), mezo_state);
  ZoStepper stepper(model, optimizer, r.trainer.schedule == "plain" ? ZoOrder::Plain : ZoOrder::Zo2);

  fs::create_directories(out);
  std::unique_ptr<JsonlWriter> jsonl;
  std::unique_ptr<TensorBoardWriter> tensorboard;
  if (r.logging.jsonl) jsonl = std::make_unique<JsonlWriter>(out + "/metrics.jsonl");
  if (r.logging.tensorboard) tensorboard = std::make_unique<TensorBoardWriter>(out + "/tensorboard");
  auto log = [&](int64_t step, const std::map<std::string, double>& values) {
    if (jsonl) jsonl->write(step, values);
    if (tensorboard) {
      for (const auto& [tag, v] : values) tensorboard->scalar(tag, step, v);
      tensorboard->flush();
    }
  };
  double best = state.value("best_metric", -1.0);
  std::string best_checkpoint = state.value("best_checkpoint", std::string());
  auto evaluate = [&](int64_t step, const char* label) {
    stepper.finish();
    double acc = accuracy(model, eval_set, r.trainer.batch_size, pad_id, label);
    log(step, {{"eval/accuracy", acc}});
    std::fprintf(stderr, "zoft: step %lld eval accuracy %.4f on %zu examples\n", (long long)step, acc, eval_set.size());
    return acc;
  };
  if (!resume && r.trainer.eval_before && !eval_set.empty()) summary.accuracy_before = evaluate(0, "eval (before)");

  const std::string recipe_yaml = recipe_to_yaml(r);
  const std::string config_text = checkpoint_config(model_path, dtype);
  auto save = [&](int64_t step, double metric) {
    stepper.finish();
    nlohmann::json s = {{"step", step},
                        {"seed", r.trainer.seed},
                        {"mezo", {{"step", optimizer.state().step}, {"pending_grad", optimizer.state().pending_grad}}},
                        {"data_order", order.state()},
                        {"best_metric", best},
                        {"best_checkpoint", best_checkpoint},
                        {"last_metric", metric}};
    CheckpointContents c;
    c.parameters = &stepper.parameters();
    c.config_json = config_text;
    c.tokenizer_dir = model_path;
    c.trainer_state = s;
    c.recipe_yaml = recipe_yaml;
    std::string path = save_checkpoint(out, step, c);
    prune_checkpoints(out, r.trainer.save_total_limit, best_checkpoint);
    summary.final_checkpoint = path;
    return path;
  };

  Progress progress("train", r.trainer.steps, "steps");
  auto loop_start = Clock::now();
  int64_t first_step = int64_t(optimizer.step());
  double last_loss = 0;
  while (int64_t(optimizer.step()) < r.trainer.steps) {
    int64_t t = int64_t(optimizer.step());
    data::Batch b = data::make_batch(train_set, order.next(size_t(r.trainer.batch_size)), batch_options);
    TokenBatch tb = token_batch(b);
    ZoStepResult result = stepper.forward_passes(tb, b.targets, [&](const std::vector<float>& loss) {
      return batch_loss(b, loss, batch_options.mode);
    });
    fault_point("step", t + 1);
    if (!result.finite()) {
      if (r.trainer.nan_policy == "stop")
        fail("non-finite loss at step {}: stopping (checkpoints written so far are intact; try a smaller optim.lr or optim.eps)", t + 1);
      for (int j = 0; j < r.optim.samples; ++j) optimizer.set_grad(j, 0.0f);
      ++summary.skipped_steps;
      std::fprintf(stderr, "zoft: step %lld: non-finite loss, step skipped\n", (long long)t + 1);
    }
    stepper.end_step();
    int64_t step = t + 1;
    last_loss = result.mean_loss();
    double rate = double(step - first_step) / std::chrono::duration<double>(Clock::now() - loop_start).count();
    progress.update(step, fmt::format("loss {:.4f}", last_loss));
    if (r.logging.log_interval > 0 && (step % r.logging.log_interval == 0 || step == r.trainer.steps)) {
      double g = optimizer.state().pending_grad.empty() ? 0.0 : optimizer.state().pending_grad[0];
      log(step, {{"train/loss", last_loss}, {"train/lr", optimizer.lr_at(uint64_t(t))},
                 {"train/projected_grad", g}, {"train/steps_per_s", rate}});
    }
    double metric = -1;
    if (r.trainer.eval_interval > 0 && step % r.trainer.eval_interval == 0 && step < r.trainer.steps && !eval_set.empty()) {
      metric = evaluate(step, "eval");
      if (metric > best) best = metric;
    }
    bool last = step == r.trainer.steps;
    if ((r.trainer.save_interval > 0 && step % r.trainer.save_interval == 0) || last) {
      if (last && !eval_set.empty()) {
        metric = summary.accuracy_after = evaluate(step, "eval (after)");
        if (metric > best) best = metric;
      }
      std::string path = save(step, metric);
      if (metric >= 0 && metric >= best) {
        best_checkpoint = path;
      }
    }
  }
  progress.finish();
  stepper.finish();
  summary.steps = int64_t(optimizer.step());
  summary.final_train_loss = last_loss;
  summary.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return summary;
}

double evaluate_task_accuracy(const std::string& model_path, const std::string& task_name,
                              const std::string& data_path, int64_t max_examples,
                              int64_t max_seq_length, int64_t batch_size, const std::string& dtype) {
  text::Tokenizer tokenizer = text::Tokenizer::from_file(model_path);
  Decoder model = Decoder::load(model_path, parse_dtype(dtype));
  data::Task task = data::Task::load(task_name);
  data::EncodeOptions encode;
  encode.max_length = std::min(max_seq_length, model.config().max_positions);
  auto examples = load_examples(task, data_path, max_examples, 0, 1, tokenizer, encode);
  return accuracy(model, examples, batch_size, data::pad_token_for(tokenizer), "eval");
}

}  // namespace zoft
