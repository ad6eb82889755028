// zoft train RECIPE.yaml [--section.key value ...] [--json]
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "train/trainer.h"

namespace zoft::cli {

namespace {

struct TrainOptions {
  std::string recipe;
  std::vector<std::string> overrides;
  bool json = false;
};

void run_train(const TrainOptions& opt) {
  // --json is ours; everything else after the recipe is a dotted override.
  std::vector<std::string> words;
  bool json = opt.json;
  for (const std::string& w : opt.overrides) {
    if (w == "--json")
      json = true;
    else
      words.push_back(w);
  }
  Recipe recipe = load_recipe(opt.recipe, parse_overrides(words));
  TrainSummary s = train(recipe);
  if (s.rank != 0) return;  // one summary per job, not one per rank
  // Steps skipped for a non-finite loss did not train: say so, and fail when nothing trained.
  const int64_t run = s.steps - std::max<int64_t>(s.resumed_from, 0);
  if (run > 0 && s.skipped_steps == run)
    fail(
        "all {} steps were skipped (non-finite loss): nothing was trained; try a smaller "
        "optim.lr or optim.eps",
        run);
  if (s.skipped_steps > 0)
    std::fprintf(stderr, "zoft: %lld of %lld steps skipped (non-finite loss)\n",
                 (long long)s.skipped_steps, (long long)run);
  nlohmann::json j = {{"steps", s.steps},
                      {"resumed_from", s.resumed_from},
                      {"accuracy_before", s.accuracy_before},
                      {"accuracy_after", s.accuracy_after},
                      {"final_train_loss", s.final_train_loss},
                      {"skipped_steps", s.skipped_steps},
                      {"seconds", s.seconds},
                      {"checkpoint", s.final_checkpoint},
                      {"eval_before", s.eval_before},
                      {"eval_after", s.eval_after}};
  if (json) {
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::string eval;  // "; accuracy 0.6 -> 0.7" or "; eval/loss 3.2 -> 2.9, eval/perplexity ..."
  for (const auto& [name, after] : s.eval_after) {
    auto before = s.eval_before.find(name);
    std::string from =
        before == s.eval_before.end() ? "" : fmt::format("{:.4f} -> ", before->second);
    eval += fmt::format("{}{} {}{:.4f}", eval.empty() ? "; " : ", ", name, from, after);
  }
  std::printf("trained %lld steps in %.1fs%s; checkpoint %s\n", (long long)s.steps, s.seconds,
              eval.c_str(), s.final_checkpoint.c_str());
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto opt = std::make_shared<TrainOptions>();
  CLI::App* cmd = app.add_subcommand("train", "fine-tune from a YAML recipe");
  cmd->add_option("recipe", opt->recipe, "recipe YAML")->required();
  cmd->add_flag("--json", opt->json, "print one JSON object with the summary");
  // Dotted overrides (--optim.lr 1e-6) are not declared flags: CLI11 leaves them as extras.
  cmd->allow_extras(true);
  cmd->footer("Any recipe field can be overridden: --section.key value (e.g. --optim.lr 1e-6)");
  cmd->callback([opt, cmd] {
    opt->overrides = cmd->remaining();
    run_train(*opt);
  });
}

}  // namespace zoft::cli
