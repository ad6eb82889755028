#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>

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
#include "model/parameters.h"
#include "runtime/offload.h"
#include "runtime/plan.h"
#include "text/tokenizer.h"
#include "train/checkpoint.h"
#include "train/fault.h"
#include "train/memory_check.h"
#include "train/metrics.h"
#include "train/objective.h"
#include "train/output_lock.h"
#include "train/recipe_changes.h"
#include "train/scoring.h"
#include "train/zo_step.h"

#ifdef ZOFT_CUDA
#include "backend/ops.h"
#include "train/cuda/device_zo_step.h"
#include "zo/cuda/perturb.h"
#endif

namespace zoft {

namespace fs = std::filesystem;

namespace {

constexpr uint64_t kEvalSubsetSeed = 1234;

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

// Rows [begin, end) of a batch (all by default), with the batch's seq.
TokenBatch token_batch(const data::Batch& b, int64_t begin = 0, int64_t end = -1) {
  if (end < 0) end = b.rows;
  TokenBatch t;
  t.batch = end - begin;
  t.seq = b.seq;
  t.ids.assign(b.ids.begin() + begin * b.seq, b.ids.begin() + end * b.seq);
  t.mask.assign(b.mask.begin() + begin * b.seq, b.mask.begin() + end * b.seq);
  return t;
}

// dist: each rank's rows of a global batch: its even share of the examples with all their
// rows (candidates), contiguous and in rank order, so that the ranks' per-token losses put end
// to end are the whole batch's (docs/dist.md).
std::vector<int64_t> shard_rows(const data::Batch& b, int ranks) {
  std::vector<int64_t> examples = dist::even_split(int64_t(b.labels.size()), ranks), rows;
  int64_t row = 0;
  for (int64_t e : examples) {
    while (row < b.rows && b.row_example[size_t(row)] < e) ++row;
    rows.push_back(row);
  }
  rows.back() = b.rows;
  return rows;
}

// Accuracy by candidate scoring (train/scoring.h). dist: each rank scores a contiguous share
// of the examples and the counts are summed, so every rank returns the same value.
double accuracy(Decoder& model, const std::vector<data::EncodedExample>& examples,
                int64_t batch_size, int32_t pad_id, const char* label,
                dist::Communicator* comm = nullptr) {
  const size_t n = examples.size();
  const size_t ranks = comm ? size_t(comm->size()) : 1, rank = comm ? size_t(comm->rank()) : 0;
  std::vector<data::EncodedExample> mine(examples.begin() + long(n * rank / ranks),
                                         examples.begin() + long(n * (rank + 1) / ranks));
  int64_t counts[2] = {count_correct(model, mine, batch_size, pad_id, rank == 0 ? label : nullptr),
                       int64_t(mine.size())};
  if (comm && ranks > 1) comm->all_reduce_sum(counts, 2);
  return counts[1] ? double(counts[0]) / double(counts[1]) : 0.0;
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
      if (!fs::exists(original))
        fs::rename(entry.path(), original, ec);
      else
        fs::remove_all(entry.path(), ec);
    } else if (name.rfind(".tmp-", 0) == 0) {
      fs::remove_all(entry.path(), ec);
    }
  }
}

// Every example must leave at least one token to score in each row it makes (its answer, or
// each candidate): a row without one makes the batch loss non-finite, and every step that draws
// it would be skipped. Truncation to data.max_seq_length is what takes them away.
void check_every_row_scores(const std::vector<data::EncodedExample>& examples,
                            const data::BatchOptions& options, const char* key, int64_t max_length,
                            const std::string& source) {
  size_t unscored = 0;
  for (size_t i = 0; i < examples.size(); ++i) {
    data::Batch b = data::make_batch(examples, {i}, options);
    for (int64_t row = 0; row < b.rows; ++row) {
      auto begin = b.targets.begin() + row * b.seq;
      if (std::none_of(begin, begin + b.seq, [](int32_t t) { return t >= 0; })) {
        ++unscored;
        break;
      }
    }
  }
  if (unscored > 0)
    fail(
        "{}: {} of {} {} examples have no token left to score at {} tokens (an answer token "
        "needs a token before it): raise data.max_seq_length",
        source, unscored, examples.size(), key, max_length);
}

// A resumed run must train as the checkpoint's run did: refuse a changed training-relevant key
// (train/recipe_changes.h) unless trainer.allow_changed_recipe. dist: every rank decides alike.
void check_recipe_unchanged(const Recipe& r, const std::string& checkpoint,
                            const std::string& recipe_yaml, bool report) {
  const std::string saved_path = checkpoint + "/recipe.yaml";
  if (!fs::exists(saved_path)) return;
  std::vector<RecipeChange> changes = changed_training_keys(read_file(saved_path), recipe_yaml);
  if (changes.empty()) return;
  if (!r.trainer.allow_changed_recipe)
    fail(
        "{}: the recipe differs from the one {} was trained with: {}; resume anyway with "
        "--trainer.allow_changed_recipe true, or start afresh in another trainer.output_dir",
        r.source, checkpoint, describe_changes(changes));
  if (report)
    std::fprintf(stderr, "zoft: resuming with a changed recipe (allowed): %s\n",
                 describe_changes(changes).c_str());
}

// Before the first step: the weights and one step's activations must fit in what was available
// when the run started (measured before the model was loaded).
void check_memory(const Recipe& r, Decoder& model, const std::vector<data::EncodedExample>& train,
                  bool classification, const dist::Communicator& comm,
                  const std::optional<AvailableMemory>& available) {
  if (!available) return;
  int64_t seq = 0, candidates = 1;
  for (const data::EncodedExample& e : train) {
    seq = std::max(seq, e.max_length());
    if (classification) candidates = std::max(candidates, int64_t(e.candidate_ids.size()));
  }
  const DType compute = model.weights().compute_dtype;
  double weights = 0;
  for (const ParameterRef& p : list_parameters(model))
    weights +=
        double(std::max<uint64_t>(p.tensor.nbytes(), p.tensor.numel() * dtype_size(compute)));
  if (!r.placement.max_memory.empty())  // offload: only the CPU budget's share is resident
    weights = std::min(
        weights,
        double(runtime::parse_max_memory(r.placement.max_memory).cpu.value_or(uint64_t(weights))));
  const int64_t global_rows = r.trainer.batch_size * candidates;
  MemoryEstimate e = estimate_training_memory(model.config(), weights, global_rows / comm.size(),
                                              global_rows, seq, 2 * int(r.optim.samples));
  check_training_memory(e, *available, comm.local_size(), r.source);
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

// Runs on every rank of the job (one process: comm has one rank). dist: start-up ends at
// startup.check(..., last = true); before it, a failure on any rank stops every rank cleanly.
TrainSummary train_ranks(const Recipe& r, dist::Communicator& comm, dist::Startup& startup) {
  const bool on_gpu = r.placement.device == "cuda";
#ifdef ZOFT_CUDA
  if (on_gpu && !cuda::device_available())
    fail(
        "{}: placement.device cuda: no CUDA device found (cudaGetDeviceCount reports none); "
        "use placement.device cpu",
        r.source);
  if (on_gpu && !r.placement.max_memory.empty())
    fail(
        "{}: placement.device cuda: placement.max_memory (offload) is not supported on the GPU "
        "yet",
        r.source);
  if (on_gpu && comm.size() > 1)
    fail("{}: placement.device cuda: one process only (no multi-GPU training yet)", r.source);
  if (on_gpu && r.optim.samples >= zo::cuda::kMaxDeviceTerms)
    fail("{}: placement.device cuda: optim.samples must be < {} on the GPU", r.source,
         zo::cuda::kMaxDeviceTerms);
#else
  if (on_gpu)
    fail("{}: placement.device {}: this build trains on the cpu only", r.source,
         r.placement.device);
#endif
  // dist: ranks on one node share its cores.
  ThreadPool::set_global_threads(dist::threads_per_rank(comm, int(r.placement.threads)));
  const std::optional<AvailableMemory> memory = available_memory();  // before loading anything
  auto start = Clock::now();
  TrainSummary summary;
  summary.rank = comm.rank();
  const std::string& out = r.trainer.output_dir;
  // dist: each rank runs batch_size / ranks examples of every global batch.
  if (r.trainer.batch_size % comm.size() != 0)
    fail(
        "{}: trainer.batch_size {} does not divide among {} ranks: use a multiple of {} (the "
        "global batch is split evenly)",
        r.source, r.trainer.batch_size, comm.size(), comm.size());
  // dist: rank 0 alone tidies the output directory and picks the checkpoint that every rank
  // resumes from; the check makes sure that every rank runs the same recipe.
  // It first takes the output directory's lock: a second run on it stops here.
  std::string latest;
  std::optional<OutputLock> lock;
  if (comm.is_root()) {
    lock.emplace(out);
    recover_checkpoints(out);
    latest = latest_checkpoint(out).value_or("");
  }
  const std::string recipe_yaml = recipe_to_yaml(r);
  latest = startup.check("recipe", dist::Fingerprint().add(recipe_yaml).value(), latest);
  std::optional<std::string> resume;
  if (!latest.empty()) resume = latest;
  nlohmann::json state = nlohmann::json::object();
  if (resume) {
    state = read_json_file(*resume + "/trainer_state.json");
    summary.resumed_from = state.at("step").get<int64_t>();
    if (comm.is_root())
      std::fprintf(stderr, "zoft: resuming from %s (step %lld)\n", resume->c_str(),
                   (long long)summary.resumed_from);
    check_recipe_unchanged(r, *resume, recipe_yaml, comm.is_root());
  }
  const std::string model_path = resume ? *resume : r.model.path;
  if (!fs::is_directory(model_path))
    fail(
        "{}: model.path must be an HF model directory to train (convert a .gguf with zoft convert)",
        r.source);

  const DType dtype = parse_dtype(r.model.dtype);
  text::Tokenizer tokenizer = text::Tokenizer::from_file(model_path);
  // A resumed run reads the checkpoint it saved, random_init or not.
  Decoder model = r.model.random_init && !resume
                      ? Decoder::random_init(model_path, dtype, uint64_t(r.trainer.seed))
                      : Decoder::load(model_path, dtype);
  data::Task task = data::Task::load(r.task.file.empty() ? r.task.name : r.task.file);
  data::EncodeOptions encode;
  encode.max_length = std::min(r.data.max_seq_length, model.config().max_positions);
  encode.truncate = r.data.truncate;
  const uint64_t seed = uint64_t(r.trainer.seed);
  auto train_set = load_examples(task, r.data.train, r.data.train_samples, r.task.k_shot, seed,
                                 tokenizer, encode);
  std::vector<data::EncodedExample> eval_set;
  if (!r.data.eval.empty())
    // A fixed sampling seed: runs with different training seeds are scored on the same examples.
    eval_set = load_examples(task, r.data.eval, r.data.eval_samples, 0, kEvalSubsetSeed, tokenizer,
                             encode);

  const int32_t pad_id = data::pad_token_for(tokenizer);
  data::BatchOptions batch_options;
  batch_options.mode = r.task.train_as_classification ? data::LossMode::kClassification
                                                      : data::LossMode::kAnswerOnly;
  batch_options.pad_id = pad_id;
  check_every_row_scores(train_set, batch_options, "data.train", encode.max_length, r.source);
  data::BatchOptions eval_options = batch_options;  // evaluation scores every candidate
  eval_options.mode = data::LossMode::kClassification;
  check_every_row_scores(eval_set, eval_options, "data.eval", encode.max_length, r.source);
  check_memory(r, model, train_set, r.task.train_as_classification, comm, memory);
  data::DataOrder order(train_set.size(), seed);
  zo::MezoState mezo_state;
  if (resume) {
    order.restore(state.at("data_order"));
    mezo_state.step = state.at("mezo").at("step").get<uint64_t>();
    mezo_state.pending_grad = state.at("mezo").at("pending_grad").get<std::vector<float>>();
  }
  // Offload (runtime/): with placement.max_memory, the layers that do not fit stream from disk;
  // it must attach before the stepper makes the weights trainable. Null: all resident.
  runtime::OffloadOptions offload_options;
  offload_options.max_memory = r.placement.max_memory;
  offload_options.offload_dir = r.placement.offload_dir;
  offload_options.prefetch = r.placement.prefetch;
  offload_options.trainable = true;
  const int64_t rows = r.trainer.batch_size * encode.max_length;
  offload_options.activation_bytes =
      runtime::activation_bytes(model.config(), rows, 2 * int(r.optim.samples), rows);
  std::unique_ptr<runtime::Offload> offload =
      runtime::Offload::attach(model, model_path, offload_options);
  zo::MezoSgd optimizer(mezo_options(r), mezo_state);
  ZoStepper stepper(model, optimizer,
                    r.trainer.schedule == "plain" ? ZoOrder::Plain : ZoOrder::Zo2);
  // placement.device cuda: the steps run on device copies of the weights, in the plain order
  // (its weights are bit-identical to zo2's on the CPU); the host model is brought up to date
  // by finish() before every evaluation and checkpoint, which then run as on the CPU.
#ifdef ZOFT_CUDA
  std::unique_ptr<DeviceZoStepper> gpu;
  if (on_gpu) gpu = std::make_unique<DeviceZoStepper>(model, stepper.parameters(), optimizer);
  auto forward_passes = [&](const TokenBatch& batch, const std::vector<int32_t>& targets,
                            const LossOfTokens& loss_of) {
    return gpu ? gpu->forward_passes(batch, targets, loss_of)
               : stepper.forward_passes(batch, targets, loss_of);
  };
  auto finish = [&] { gpu ? gpu->finish() : stepper.finish(); };
#else
  auto forward_passes = [&](const TokenBatch& batch, const std::vector<int32_t>& targets,
                            const LossOfTokens& loss_of) {
    return stepper.forward_passes(batch, targets, loss_of);
  };
  auto finish = [&] { stepper.finish(); };
#endif

  // dist: the last start-up check: every rank loaded the same examples and trainer state.
  dist::Fingerprint inputs;
  inputs.add(int64_t(train_set.size()))
      .add(int64_t(eval_set.size()))
      .add(int64_t(optimizer.step()));
  for (const auto* set : {&train_set, &eval_set})
    for (const data::EncodedExample& e : *set) {
      inputs.add(e.context_ids.data(), e.context_ids.size() * sizeof(int32_t))
          .add(int64_t(e.label));
      for (const auto& c : e.candidate_ids) inputs.add(c.data(), c.size() * sizeof(int32_t));
    }
  startup.check("data and trainer state", inputs.value(), {}, true);
  if (comm.size() > 1 && comm.is_root())
    std::fprintf(stderr,
                 "zoft: %d ranks (%s), %lld examples per rank per step, %d threads per rank\n",
                 comm.size(), comm.backend().c_str(),
                 (long long)(r.trainer.batch_size / comm.size()), ThreadPool::global().size());

  // dist: rank 0 writes all files. On resume, the metrics of the steps after the checkpoint are
  // logged again: drop the first run's rows of them (all rows when starting afresh).
  if (comm.is_root() && r.logging.jsonl)
    drop_rows_after(out + "/metrics.jsonl", summary.resumed_from);
  std::unique_ptr<JsonlWriter> jsonl;
  std::unique_ptr<TensorBoardWriter> tensorboard;
  if (r.logging.jsonl && comm.is_root())
    jsonl = std::make_unique<JsonlWriter>(out + "/metrics.jsonl");
  if (r.logging.tensorboard && comm.is_root())
    tensorboard = std::make_unique<TensorBoardWriter>(out + "/tensorboard");
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
    finish();
    double acc = accuracy(model, eval_set, r.trainer.batch_size, pad_id, label, &comm);
    log(step, {{"eval/accuracy", acc}});
    if (comm.is_root())
      std::fprintf(stderr, "zoft: step %lld eval accuracy %.4f on %zu examples\n", (long long)step,
                   acc, eval_set.size());
    return acc;
  };
  if (!resume && r.trainer.eval_before && !eval_set.empty())
    summary.accuracy_before = evaluate(0, "eval (before)");

  const std::string config_text = checkpoint_config(model_path, dtype);
  // Tokenizer files are read now: pruning may delete the checkpoint this run resumed from. Every
  // file the tokenizer may load from, as it is (compressed or not), so that the checkpoint loads
  // as a model directory, for resuming and for generate.
  std::vector<std::string> names = text::tokenizer_file_names();
  names.insert(names.end(), {"generation_config.json", "special_tokens_map.json"});
  std::vector<std::pair<std::string, std::string>> tokenizer_files;
  for (const std::string& name : names)
    if (fs::is_regular_file(fs::path(model_path) / name))
      tokenizer_files.emplace_back(name, read_file((fs::path(model_path) / name).string()));
  auto save = [&](int64_t step, double metric) {
    finish();
    nlohmann::json s = {
        {"step", step},
        {"seed", r.trainer.seed},
        {"mezo",
         {{"step", optimizer.state().step}, {"pending_grad", optimizer.state().pending_grad}}},
        {"data_order", order.state()},
        {"best_metric", best},
        {"best_checkpoint", best_checkpoint},
        {"last_metric", metric}};
    CheckpointContents c;
    c.parameters = &stepper.parameters();
    c.config_json = config_text;
    c.extra_files = tokenizer_files;
    c.trainer_state = s;
    c.recipe_yaml = recipe_yaml;
    if (offload)  // same bytes as a resident run's checkpoint, streamed from the offload file
      c.write_weights = [&](const std::string& path, const std::vector<NamedTensor>& tensors,
                            const std::map<std::string, std::string>& metadata) {
        offload->write_safetensors(path, tensors, metadata);
      };
    // dist: rank 0 writes; the others wait for it (every rank has applied the same update).
    std::string path = (fs::path(out) / ("checkpoint-" + std::to_string(step))).string();
    if (comm.is_root()) {
      path = save_checkpoint(out, step, c);
      prune_checkpoints(out, r.trainer.save_total_limit, best_checkpoint);
    }
    comm.barrier();
    summary.final_checkpoint = path;
    return path;
  };

  std::optional<Progress> progress;
  if (comm.is_root()) progress.emplace("train", r.trainer.steps, "steps");
  const double comm_start = comm.comm_seconds();
  auto loop_start = Clock::now();
  int64_t first_step = int64_t(optimizer.step());
  double last_loss = 0;
  while (int64_t(optimizer.step()) < r.trainer.steps) {
    int64_t t = int64_t(optimizer.step());
    data::Batch b =
        data::make_batch(train_set, order.next(size_t(r.trainer.batch_size)), batch_options);
    // dist: this rank forwards its rows only; the batch loss comes from every rank's per-token
    // losses gathered in rank order, computed exactly as one process computes it.
    const std::vector<int64_t> shard = shard_rows(b, comm.size());
    const int64_t row0 = shard[size_t(comm.rank())], row1 = shard[size_t(comm.rank()) + 1];
    TokenBatch tb = token_batch(b, row0, row1);
    const std::vector<int32_t> targets(b.targets.begin() + row0 * b.seq,
                                       b.targets.begin() + row1 * b.seq);
    std::vector<float> all_loss;
    ZoStepResult result = forward_passes(tb, targets, [&](const std::vector<float>& loss) {
      if (comm.size() == 1) return batch_loss(b, loss, batch_options.mode);
      dist::all_gather_rows(comm, loss, shard, b.seq, all_loss);
      return batch_loss(b, all_loss, batch_options.mode);
    });
    fault_point("step", t + 1);
    if (!result.finite()) {
      if (r.trainer.nan_policy == "stop")
        throw dist::CollectiveError(fmt::format(  // dist: every rank sees the same loss
            "non-finite loss at step {}: stopping (checkpoints written so far are intact; try a "
            "smaller optim.lr or optim.eps)",
            t + 1));
      for (int j = 0; j < r.optim.samples; ++j) optimizer.set_grad(j, 0.0f);
      ++summary.skipped_steps;
      if (comm.is_root())
        std::fprintf(stderr, "zoft: step %lld: non-finite loss, step skipped\n", (long long)t + 1);
    }
    stepper.end_step();
    int64_t step = t + 1;
    last_loss = result.mean_loss();
    double rate = double(step - first_step) /
                  std::chrono::duration<double>(Clock::now() - loop_start).count();
    if (progress) progress->update(step, fmt::format("loss {:.4f}", last_loss));
    if (r.logging.log_interval > 0 &&
        (step % r.logging.log_interval == 0 || step == r.trainer.steps)) {
      double g = optimizer.state().pending_grad.empty() ? 0.0 : optimizer.state().pending_grad[0];
      std::map<std::string, double> values = {{"train/loss", last_loss},
                                              {"train/lr", optimizer.lr_at(uint64_t(t))},
                                              {"train/projected_grad", g},
                                              {"train/steps_per_s", rate}};
      if (comm.size() > 1)  // dist: time in collectives, waiting for slower ranks included
        values["dist/comm_s_per_step"] =
            (comm.comm_seconds() - comm_start) / double(step - first_step);
      log(step, values);
    }
    double metric = -1;
    if (r.trainer.eval_interval > 0 && step % r.trainer.eval_interval == 0 &&
        step < r.trainer.steps && !eval_set.empty()) {
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
  if (progress) progress->finish();
  finish();
  summary.steps = int64_t(optimizer.step());
  summary.final_train_loss = last_loss;
  summary.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (offload) {
    runtime::ExecutorStats st = offload->stats();
    std::fprintf(stderr,
                 "zoft: offload: read %.1f MB in %lld reads (%.0f MB/s), wrote %.1f MB in %lld "
                 "writes (%.0f MB/s), compute waited %.2fs\n",
                 double(st.bytes_read) / 1e6, (long long)st.reads,
                 double(st.bytes_read) / 1e6 / std::max(st.read_seconds, 1e-9),
                 double(st.bytes_written) / 1e6, (long long)st.writes,
                 double(st.bytes_written) / 1e6 / std::max(st.write_seconds, 1e-9),
                 st.stall_seconds);
  }
  return summary;
}

}  // namespace

// dist: every rank of the job (docs/dist.md) runs the same loop on its shard of each batch.
TrainSummary train(const Recipe& r) {
  dist::Communicator& comm = dist::world(r.dist.backend);
  return dist::run(comm, [&](dist::Startup& startup) { return train_ranks(r, comm, startup); });
}

double evaluate_task_accuracy(const std::string& model_path, const std::string& task_name,
                              const std::string& data_path, int64_t max_examples,
                              int64_t max_seq_length, int64_t batch_size,
                              const std::string& dtype) {
  text::Tokenizer tokenizer = text::Tokenizer::from_file(model_path);
  Decoder model = Decoder::load(model_path, parse_dtype(dtype));
  data::Task task = data::Task::load(task_name);
  data::EncodeOptions encode;
  encode.max_length = std::min(max_seq_length, model.config().max_positions);
  auto examples = load_examples(task, data_path, max_examples, 0, 1, tokenizer, encode);
  return accuracy(model, examples, batch_size, data::pad_token_for(tokenizer), "eval");
}

}  // namespace zoft
