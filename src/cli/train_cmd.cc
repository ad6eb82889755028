// zoft train RECIPE.yaml [--section.key value ...] [--json]
// zoft train RECIPE.yaml --find-lr [--find-lr-grid LRS | --find-lr-min A --find-lr-max B
//   --find-lr-points N] [--find-lr-steps K]: the learning-rate range test (train/lr_range_test.h)
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "train/lr_range_test.h"
#include "train/trainer.h"

namespace zoft::cli {

namespace {

struct TrainOptions {
  std::string recipe;
  std::vector<std::string> overrides;
  bool json = false;
  bool find_lr = false;
  bool find_lr_option = false;  // some --find-lr-* option was given
  std::string find_lr_grid;
  LrRangeOptions lr_range;
};

// The range test: a table (or one JSON object) and the best lr; no checkpoint is written.
void run_find_lr(const TrainOptions& opt, const Recipe& recipe, bool json) {
  LrRangeOptions o = opt.lr_range;
  if (o.grid_given) o.grid = parse_lr_list(opt.find_lr_grid);
  LrRangeResult r = find_lr(recipe, o);
  if (!json) {
    std::printf("%s", format_lr_range(r, recipe.optim.method).c_str());
    return;
  }
  nlohmann::json trials = nlohmann::json::array();
  for (const LrTrial& t : r.trials)
    trials.push_back({{"lr", t.lr},
                      {"first_loss", t.first_loss},
                      {"score", t.diverged ? nlohmann::json() : nlohmann::json(t.score)},
                      {"diverged", t.diverged},
                      {"skipped", t.skipped},
                      {"losses", t.losses}});
  nlohmann::json j = {{"method", recipe.optim.method},
                      {"steps", r.steps},
                      {"best_lr", r.best_lr},
                      {"trials", trials}};
  std::printf("%s\n", j.dump().c_str());
}

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
  if (opt.find_lr_option && !opt.find_lr)
    fail("the --find-lr-* options need --find-lr (the learning-rate range test)");
  Recipe recipe = load_recipe(opt.recipe, parse_overrides(words));
  if (opt.find_lr) return run_find_lr(opt, recipe, json);
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
  cmd->add_flag("--find-lr", opt->find_lr,
                "learning-rate range test: train a few steps per lr of a grid from the same "
                "weights on the same batches, print each lr's loss and the best; writes nothing");
  LrRangeOptions& lr = opt->lr_range;
  std::vector<CLI::Option*> lr_options = {
      cmd->add_option("--find-lr-grid", opt->find_lr_grid,
                      "the lrs to try, comma-separated (default: a log grid)"),
      cmd->add_option("--find-lr-min", lr.min_lr, "smallest lr of the log grid")
          ->capture_default_str(),
      cmd->add_option("--find-lr-max", lr.max_lr, "largest lr of the log grid")
          ->capture_default_str(),
      cmd->add_option("--find-lr-points", lr.points, "lrs in the log grid")->capture_default_str(),
      cmd->add_option("--find-lr-steps", lr.steps, "steps per lr")->capture_default_str()};
  // Dotted overrides (--optim.lr 1e-6) are not declared flags: CLI11 leaves them as extras.
  cmd->allow_extras(true);
  cmd->footer("Any recipe field can be overridden: --section.key value (e.g. --optim.lr 1e-6)");
  cmd->callback([opt, cmd, lr_options] {
    opt->overrides = cmd->remaining();
    opt->lr_range.grid_given = lr_options[0]->count() > 0;
    for (CLI::Option* o : lr_options) opt->find_lr_option |= o->count() > 0;
    if (opt->lr_range.grid_given &&
        (lr_options[1]->count() || lr_options[2]->count() || lr_options[3]->count()))
      fail("give --find-lr-grid or the log grid's --find-lr-min / -max / -points, not both");
    run_train(*opt);
  });
}

}  // namespace zoft::cli
