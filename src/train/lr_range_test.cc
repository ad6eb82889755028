#include "train/lr_range_test.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>

#include "core/dtype.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/thread_pool.h"
#include "data/sampling.h"
#include "dist/communicator.h"
#include "model/arch.h"
#include "model/decoder.h"
#include "text/tokenizer.h"
#include "train/lora_training.h"
#include "train/method.h"
#include "train/step_batch.h"
#include "train/train_data.h"

namespace zoft {

namespace {

constexpr int64_t kMaxTrials = 100;  // a grid is a few dozen lrs at most; more is a typo

// A log-grid value rounded to 3 significant digits, so that the lr printed is the lr tried.
double three_digits(double lr) {
  return std::stod(fmt::format("{:.3g}", lr));
}

std::vector<double> log_grid(const LrRangeOptions& o) {
  if (!(o.min_lr > 0) || !(o.max_lr > 0) || !std::isfinite(o.min_lr) || !std::isfinite(o.max_lr))
    fail("--find-lr-min and --find-lr-max must be positive and finite (a log grid), got {} and {}",
         o.min_lr, o.max_lr);
  if (!(o.max_lr > o.min_lr))
    fail("--find-lr-max ({}) must be larger than --find-lr-min ({})", o.max_lr, o.min_lr);
  if (o.points < 2 || o.points > kMaxTrials)
    fail("--find-lr-points must be between 2 and {}, got {}", kMaxTrials, o.points);
  std::vector<double> lrs;
  const double a = std::log(o.min_lr), b = std::log(o.max_lr);
  for (int64_t i = 0; i < o.points; ++i)
    lrs.push_back(three_digits(std::exp(a + (b - a) * double(i) / double(o.points - 1))));
  return lrs;
}

std::vector<double> given_grid(const LrRangeOptions& o) {
  if (o.grid.empty())
    fail("--find-lr-grid is empty: give learning rates separated by commas, e.g. 0,1e-5,1e-4");
  if (int64_t(o.grid.size()) > kMaxTrials)
    fail("--find-lr-grid has {} learning rates: at most {}", o.grid.size(), kMaxTrials);
  for (double lr : o.grid)
    if (!std::isfinite(lr) || lr < 0)
      fail("--find-lr-grid: {} is not a learning rate (finite and >= 0)", lr);
  return o.grid;
}

// The model every trial starts from: the recipe's, loaded afresh (a method trains it in place).
Decoder starting_model(const Recipe& r, DType dtype) {
  return r.model.random_init ? Decoder::random_init(r.model.path, dtype, uint64_t(r.trainer.seed))
                             : Decoder::load(r.model.path, dtype);
}

// The mean of the last half of the losses (+inf when a step diverged).
double last_half_mean(const LrTrial& t) {
  if (t.diverged) return std::numeric_limits<double>::infinity();
  const size_t first = t.losses.size() / 2;
  double sum = 0;
  for (size_t i = first; i < t.losses.size(); ++i) sum += t.losses[i];
  return sum / double(t.losses.size() - first);
}

// What a trial needs besides its lr: the data, loaded once, and the single-process ranks.
struct TrialSetup {
  const Recipe& recipe;
  DType dtype;
  const TrainData& data;
  dist::Communicator& comm;
  int64_t steps;
  Progress& progress;
  int64_t steps_before;          // of earlier trials, for the progress bar
  std::vector<double> baseline;  // lr 0's loss of each step (empty while lr 0 runs)
};

// As the trainer's guard (train/guards.h) with trainer.divergence_factor: a step's loss more than
// the factor times lr 0's on the same batch. Paired by batch, so a hard batch is not a divergence.
bool diverges(const TrialSetup& s, int64_t step, double loss) {
  if (!std::isfinite(loss)) return true;
  const double factor = s.recipe.trainer.divergence_factor;
  return factor > 0 && size_t(step) <= s.baseline.size() &&
         loss > factor * s.baseline[size_t(step - 1)];
}

// `steps` steps of the recipe's method at `lr` from the starting weights, in the recipe's data
// order from its start; stops at the first step that diverges.
LrTrial run_trial(const TrialSetup& s, double lr) {
  Recipe r = s.recipe;
  r.optim.lr = lr;
  // Destroyed in reverse: the method refers to the adapters and the model, the adapters to it.
  Decoder model = starting_model(r, s.dtype);
  std::unique_ptr<LoraTraining> lora;
  if (r.peft.method == "lora") lora = std::make_unique<LoraTraining>(r, model, "");
  std::unique_ptr<TrainingMethod> method = make_training_method(r, model, s.comm, lora.get());
  data::DataOrder order(s.data.train_size(), uint64_t(r.trainer.seed));
  // As the trainer loop: the GPU stepper reads per-token losses only.
  const bool fast_path = r.trainer.single_token_fast_path && r.placement.device == "cpu";
  std::vector<float> gathered;
  LrTrial t;
  t.lr = lr;
  for (int64_t step = 1; step <= s.steps; ++step) {
    data::Batch b = s.data.batch(order.next(size_t(r.trainer.batch_size)));
    StepReport report =
        method->step(rank_step_batch(b, s.data.batch_options().mode, s.comm, gathered, fast_path));
    s.progress.update(s.steps_before + step, fmt::format("lr {} loss {:.4f}", lr, report.loss));
    if (!report.finite || diverges(s, step, report.loss)) {
      t.diverged = true;
      t.diverged_loss = report.loss;
      break;
    }
    t.losses.push_back(report.loss);
  }
  t.first_loss = t.losses.empty() ? std::numeric_limits<double>::quiet_NaN() : t.losses[0];
  t.score = last_half_mean(t);
  return t;
}

}  // namespace

std::vector<double> parse_lr_list(const std::string& text) {
  std::vector<double> lrs;
  if (text.find_first_not_of(" \t") == std::string::npos) return lrs;
  size_t begin = 0;
  while (begin <= text.size()) {
    size_t end = std::min(text.find(',', begin), text.size());
    const std::string word = text.substr(begin, end - begin);
    size_t used = 0;
    double lr = 0;
    try {
      lr = std::stod(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || word.find_first_not_of(" \t", used) != std::string::npos)
      fail("--find-lr-grid: '{}' is not a number (give learning rates separated by commas)", word);
    lrs.push_back(lr);
    begin = end + 1;
  }
  return lrs;
}

std::vector<double> lr_range_grid(const LrRangeOptions& o) {
  if (o.steps < 2)
    fail(
        "--find-lr-steps must be at least 2 (an lr's score is its mean loss over the last half of "
        "the steps), got {}",
        o.steps);
  std::vector<double> lrs = o.grid_given ? given_grid(o) : log_grid(o);
  lrs.push_back(0.0);  // what not training scores on the same batches
  std::sort(lrs.begin(), lrs.end());
  lrs.erase(std::unique(lrs.begin(), lrs.end()), lrs.end());
  return lrs;
}

LrRangeResult find_lr(const Recipe& recipe, const LrRangeOptions& options) {
  const std::vector<double> grid = lr_range_grid(options);
  if (!recipe.placement.max_memory.empty())
    fail(
        "{}: --find-lr does not run with placement.max_memory (offload): find the lr on a model "
        "that fits, or train without --find-lr",
        recipe.source);
  if (!std::filesystem::is_directory(recipe.model.path))
    fail(
        "{}: model.path must be an HF model directory to train (convert a .gguf with zoft "
        "convert)",
        recipe.source);
  std::unique_ptr<dist::Communicator> comm = dist::make_single();
  ThreadPool::set_global_threads(dist::threads_per_rank(*comm, int(recipe.placement.threads)));
  const DType dtype = parse_dtype(recipe.model.dtype);
  const text::Tokenizer tokenizer = text::Tokenizer::from_file(recipe.model.path);
  const std::unique_ptr<TrainData> data =
      load_train_data(recipe, tokenizer, read_model_config(recipe.model.path).config);
  LrRangeResult result;
  result.steps = options.steps;
  Progress progress("find-lr", int64_t(grid.size()) * options.steps, "steps");
  TrialSetup setup{recipe, dtype, *data, *comm, options.steps, progress, 0, {}};
  // Ascending from lr 0; once an lr diverges, the larger ones are not tried (they would waste
  // their steps, and a model wrecked by a huge lr can score chance level, which may be lower
  // than a badly calibrated start's loss).
  for (double lr : grid) {
    if (!result.trials.empty() && result.trials.back().diverged) {
      LrTrial skipped;
      skipped.lr = lr;
      skipped.skipped = skipped.diverged = true;
      skipped.score = std::numeric_limits<double>::infinity();
      result.trials.push_back(skipped);
      continue;
    }
    result.trials.push_back(run_trial(setup, lr));
    if (lr == 0) setup.baseline = result.trials.back().losses;
    setup.steps_before += options.steps;
  }
  progress.finish();
  double best = result.trials[0].score;  // lr 0
  for (const LrTrial& t : result.trials)
    if (t.score < best) {
      best = t.score;
      result.best_lr = t.lr;
    }
  return result;
}

std::string format_lr_range(const LrRangeResult& r, const std::string& method) {
  const int64_t from = r.steps / 2 + 1;
  std::string out = fmt::format(
      "lr range test: {}, {} steps per lr, each from the same weights on the same batches\n"
      "{:>10}  {:>11}  {:>22}  {:>9}\n",
      method, r.steps, "lr", "loss step 1", fmt::format("mean loss steps {}-{}", from, r.steps),
      "vs lr 0");
  const double baseline = r.trials[0].score;
  for (const LrTrial& t : r.trials) {
    if (t.skipped) {
      out += fmt::format("{:>10}  {:>11}  {:>22}\n", t.lr, "", "not tried");
      continue;
    }
    if (t.diverged) {
      out += fmt::format(
          "{:>10}  {:>11.4f}  {:>22}\n", t.lr, t.first_loss,
          fmt::format("diverged: step {} {:.4g}", t.losses.size() + 1, t.diverged_loss));
      continue;
    }
    const std::string delta = t.lr == 0 ? "" : fmt::format("{:+.3g}", t.score - baseline);
    out += fmt::format("{:>10}  {:>11.4f}  {:>22.4f}  {:>9}\n", t.lr, t.first_loss, t.score, delta);
  }
  if (r.best_lr == 0)
    return out + fmt::format(
                     "best lr: none: no lr of the grid lowered the loss below not training (lr 0, "
                     "{:.4f}) in {} steps; try another grid, more steps, or other optim settings\n",
                     baseline, r.steps);
  const auto best = std::find_if(r.trials.begin(), r.trials.end(),
                                 [&](const LrTrial& t) { return t.lr == r.best_lr; });
  return out + fmt::format(
                   "best lr: {} (mean loss {:.4f}, {:.4f} without training); train with "
                   "--optim.lr {}\n",
                   r.best_lr, best->score, baseline, r.best_lr);
}

}  // namespace zoft
