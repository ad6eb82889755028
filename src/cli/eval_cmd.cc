// zoft eval --model MODEL --data FILE [--adapter DIR] [--window N --stride S --max-tokens N]
// [--json]
//           [--device cpu|cuda] [--max-memory gpu=B,cpu=B --offload-dir DIR --prefetch K]
//           [--random-init]
// Perplexity over a .txt file or the text field of a .jsonl file, with a sliding window.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"
#include "core/progress.h"
#include "model/perplexity.h"
#include "text/tokenizer.h"
#include "train/trainer.h"

namespace zoft::cli {

namespace {

struct EvalOptions {
  std::string model, data, task, adapter, text_field = "text";
  int64_t window = 0, stride = 0, max_tokens = 0, max_examples = 0, batch_size = 16;
  PlacementOptions placement;
  bool json = false;
  bool random_init = false;  // weights drawn from MODEL's config.json (benchmarks)
};

// Counts from the command line, checked before anything is loaded.
void check_counts(const EvalOptions& opt) {
  if (opt.batch_size <= 0) fail("--batch-size must be positive, got {}", opt.batch_size);
  for (auto [flag, value] : {std::pair{"--max-examples", opt.max_examples},
                             {"--window", opt.window},
                             {"--stride", opt.stride},
                             {"--max-tokens", opt.max_tokens}})
    if (value < 0) fail("{} must be >= 0 (0 = the default), got {}", flag, value);
}

void run_eval(const EvalOptions& opt) {
  check_counts(opt);
  DType dtype = apply_placement(opt.placement, /*cuda_ok=*/true);
  if (!opt.task.empty()) {
    if (opt.random_init) fail("--random-init is not supported with --task");
    if (!opt.adapter.empty() && !opt.placement.max_memory.empty())
      fail("--adapter runs on the CPU with every layer resident: merge it first for --max-memory");
    std::optional<runtime::GpuTierReport> tier_report;
    PlaceModel place = task_placement(opt.model, opt.placement, &tier_report);
    auto start = std::chrono::steady_clock::now();
    double acc = evaluate_task_accuracy(opt.model, opt.task, opt.data, opt.max_examples,
                                        opt.window > 0 ? opt.window : 2048, opt.batch_size,
                                        dtype_name(dtype), opt.adapter, place);
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    nlohmann::json j = {{"model", opt.model},
                        {"data", opt.data},
                        {"task", opt.task},
                        {"accuracy", acc},
                        {"seconds", seconds}};
    if (tier_report) add_gpu_tier_report(j, *tier_report);
    if (opt.json)
      std::printf("%s\n", j.dump().c_str());
    else if (tier_report)
      std::fprintf(stderr, "zoft: %s\n", tier_report->text().c_str());
    if (!opt.json)
      std::printf("accuracy %.4f (%s on %s), %.1fs\n", acc, opt.task.c_str(), opt.data.c_str(),
                  seconds);
    return;
  }
  std::string body = read_eval_text(opt.data, opt.text_field);
  text::Tokenizer tokenizer = text::Tokenizer::from_file(opt.model);
  Decoder model =
      opt.random_init ? Decoder::random_init(opt.model, dtype) : Decoder::load(opt.model, dtype);
  if (opt.random_init && !opt.placement.max_memory.empty() &&
      (!uses_gpu_tier(opt.placement) ||
       runtime::parse_max_memory(opt.placement.max_memory).cpu))  // the GPU tier streams RAM
    fail("--random-init has no checkpoint to stream layers from disk: drop cpu= from --max-memory");
  auto adapter = attach_adapter(model, opt.adapter, opt.placement);  // --adapter: LoRA
  auto offload = attach_offload(model, opt.model, opt.placement);    // --max-memory cpu=: disk
  auto gpu_tier = attach_gpu_tier(model, opt.placement);  // --max-memory gpu=: stream from RAM
  const bool cuda = opt.placement.device == "cuda";
  if (cuda && !gpu_tier) model = model.to_device(Device::CUDA);  // weights uploaded once, here
  TokenLossFn token_losses = [&model](const TokenBatch& b, const int32_t* t, float* loss) {
    model.token_losses(b, t, loss);
  };
  std::vector<int32_t> ids = eval_tokens(tokenizer, body, opt.max_tokens, opt.data);
  auto [window, stride] = eval_window(model.config(), opt.window, opt.stride);

  Progress progress("eval", int64_t(ids.size()), "tokens");
  auto start = std::chrono::steady_clock::now();
  PerplexityResult r = perplexity(token_losses, ids, window, stride,
                                  [&](int64_t done, int64_t) { progress.update(done); });
  progress.finish();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  nlohmann::json j = {{"model", opt.model},
                      {"data", opt.data},
                      {"tokens", ids.size()},
                      {"scored_tokens", r.tokens},
                      {"window", window},
                      {"stride", stride},
                      {"windows", r.windows},
                      {"mean_nll", r.mean_nll()},
                      {"perplexity", r.perplexity()},
                      {"seconds", seconds},
                      {"dtype", opt.placement.dtype},
                      {"device", opt.placement.device}};
  if (gpu_tier) add_gpu_tier_report(j, gpu_tier->report());
  if (opt.json) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    if (gpu_tier) std::fprintf(stderr, "zoft: %s\n", gpu_tier->report().text().c_str());
    std::printf(
        "perplexity %.4f (mean NLL %.5f nats) over %lld tokens, window %lld, stride %lld, "
        "%.1fs\n",
        r.perplexity(), r.mean_nll(), (long long)r.tokens, (long long)window, (long long)stride,
        seconds);
  }
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto opt = std::make_shared<EvalOptions>();
  CLI::App* cmd = app.add_subcommand("eval", "perplexity of a text (or, later, task accuracy)");
  cmd->add_option("--model", opt->model, "HF model directory")->required();
  cmd->add_option("--data", opt->data, ".txt or .jsonl file, optionally .xz ('-' = stdin)")
      ->required();
  cmd->add_option("--adapter", opt->adapter, "a PEFT LoRA adapter directory to apply");
  cmd->add_option("--task", opt->task, "task accuracy: a built-in task name or a task YAML");
  cmd->add_option("--max-examples", opt->max_examples, "task: a seeded subset of N examples");
  cmd->add_option("--batch-size", opt->batch_size, "task: examples per forward");
  cmd->add_option("--text-field", opt->text_field, "the .jsonl field holding the text");
  cmd->add_option("--window", opt->window, "tokens per window (default min(positions, 1024))");
  cmd->add_option("--stride", opt->stride, "window step (default window / 2)");
  cmd->add_option("--max-tokens", opt->max_tokens, "evaluate only the first N tokens");
  cmd->add_flag("--json", opt->json, "print one JSON object");
  cmd->add_flag("--random-init", opt->random_init,
                "no checkpoint: weights drawn from MODEL's config.json (MODEL also holds the "
                "tokenizer); for benchmarks");
  add_placement_options(cmd, opt->placement);
  cmd->callback([opt] { run_eval(*opt); });
}

}  // namespace zoft::cli
