// The learning-rate range test (train/lr_range_test.h, `zoft train --find-lr`): its grid and its
// refusals, and on a small model where the answer is known it ranks the lrs as training does:
// not training (lr 0) loses to a sane lr, an lr far too large loses to both, and the result is
// the same bit for bit when run again.
#include "train/lr_range_test.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>

#include "cli/cli_test_util.h"
#include "core/error.h"
#include "runtime/llama_maker.h"

namespace zoft {
namespace {

namespace fs = std::filesystem;

std::string lr_range_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(LrRangeGrid, LogGridHasThreeDigitLrsAndLrZeroFirst) {
  LrRangeOptions o;  // 1e-7 .. 1e-3, 9 points: half decades
  EXPECT_EQ(lr_range_grid(o), (std::vector<double>{0, 1e-7, 3.16e-7, 1e-6, 3.16e-6, 1e-5, 3.16e-5,
                                                   1e-4, 3.16e-4, 1e-3}));
  o.grid_given = true;
  o.grid = {1e-4, 0, 1e-5, 1e-4};  // sorted, lr 0 once, duplicates dropped
  EXPECT_EQ(lr_range_grid(o), (std::vector<double>{0, 1e-5, 1e-4}));
}

TEST(LrRangeGrid, BadInputIsOneClearLine) {
  auto grid_error = [](LrRangeOptions o) { return lr_range_error([&] { lr_range_grid(o); }); };
  LrRangeOptions o;
  o.grid_given = true;
  EXPECT_EQ(grid_error(o),
            "--find-lr-grid is empty: give learning rates separated by commas, e.g. 0,1e-5,1e-4");
  o.grid = {1e-5, -1e-5};
  EXPECT_EQ(grid_error(o), "--find-lr-grid: -1e-05 is not a learning rate (finite and >= 0)");
  o.grid = {NAN};
  EXPECT_EQ(grid_error(o), "--find-lr-grid: nan is not a learning rate (finite and >= 0)");
  LrRangeOptions bounds;
  bounds.min_lr = 0;
  EXPECT_EQ(grid_error(bounds),
            "--find-lr-min and --find-lr-max must be positive and finite (a log grid), got 0 and "
            "0.001");
  bounds.min_lr = 1e-3;
  bounds.max_lr = -1;
  EXPECT_EQ(grid_error(bounds),
            "--find-lr-min and --find-lr-max must be positive and finite (a log grid), got 0.001 "
            "and -1");
  bounds.max_lr = 1e-4;
  EXPECT_EQ(grid_error(bounds), "--find-lr-max (0.0001) must be larger than --find-lr-min (0.001)");
  LrRangeOptions points;
  points.points = 1;
  EXPECT_EQ(grid_error(points), "--find-lr-points must be between 2 and 100, got 1");
  points.points = 1000000000;
  EXPECT_EQ(grid_error(points), "--find-lr-points must be between 2 and 100, got 1000000000");
  LrRangeOptions steps;
  steps.steps = 1;
  EXPECT_EQ(grid_error(steps),
            "--find-lr-steps must be at least 2 (an lr's score is its mean loss over the last "
            "half of the steps), got 1");
  EXPECT_EQ(parse_lr_list("0, 1e-5,3.5e-4"), (std::vector<double>{0, 1e-5, 3.5e-4}));
  EXPECT_TRUE(parse_lr_list(" ").empty());
  EXPECT_EQ(lr_range_error([] { parse_lr_list("1e-5,fast"); }),
            "--find-lr-grid: 'fast' is not a number (give learning rates separated by commas)");
  EXPECT_EQ(lr_range_error([] { parse_lr_list("1e-5,,1e-4"); }),
            "--find-lr-grid: '' is not a number (give learning rates separated by commas)");
  EXPECT_EQ(lr_range_error([] { parse_lr_list("1e-5x"); }),
            "--find-lr-grid: '1e-5x' is not a number (give learning rates separated by commas)");
}

// A small random Llama on the fine-food fixture (37 of its 50 reviews are "great"): a sane lr
// learns to prefer " great" within a few steps, which lowers the classification loss.
class LrRange : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("zoft_lr_range_" + std::to_string(getpid()));
    fs::create_directories(root_);
    test::make_llama((root_ / "model").string(), test::LlamaShape{});
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }

  static Recipe recipe(const std::string& method) {
    const std::string src = ZOFT_SOURCE_DIR;
    Recipe r;
    r.source = "lr_range";
    r.model.path = (root_ / "model").string();
    r.data.train = src + "/tests/fixtures/data/fine_foods_train.jsonl";
    r.data.max_seq_length = 64;
    r.task.file = src + "/recipes/tasks/fine_foods.yaml";
    r.optim.method = method;
    r.optim.schedule = "constant";
    r.trainer.batch_size = 8;
    r.trainer.seed = 5;
    r.placement.threads = 1;
    return r;
  }

  static LrRangeOptions grid(std::vector<double> lrs, int64_t steps) {
    LrRangeOptions o;
    o.grid = std::move(lrs);
    o.grid_given = true;
    o.steps = steps;
    return o;
  }

  static fs::path root_;
};

fs::path LrRange::root_;

// On this model MeZO's loss falls fastest near lr 1e-3; 1e-2 overshoots until a step's loss is
// more than twice lr 0's on that batch (trainer.divergence_factor 2): it diverged, and the larger
// lrs are not tried.
TEST_F(LrRange, MezoPicksTheSaneLrOverNotTrainingAndOverOneTooLarge) {
  const LrRangeResult r = find_lr(recipe("mezo-sgd"), grid({0, 1e-3, 1e-2, 1e3}, 12));
  const std::string table = format_lr_range(r, "mezo-sgd");
  ASSERT_EQ(r.trials.size(), 4u) << table;
  EXPECT_EQ(r.best_lr, 1e-3) << table;
  EXPECT_LT(r.trials[1].score, r.trials[0].score) << table;
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(r.trials[size_t(i)].first_loss, r.trials[0].first_loss) << table;  // one start
    EXPECT_EQ(r.trials[size_t(i)].losses.size(), 12u);
    EXPECT_FALSE(r.trials[size_t(i)].diverged);
  }
  EXPECT_TRUE(r.trials[2].diverged && !r.trials[2].skipped) << table;
  EXPECT_TRUE(std::isinf(r.trials[2].score));
  EXPECT_TRUE(r.trials[3].skipped) << table;
  EXPECT_NE(table.find("best lr: 0.001 ("), std::string::npos) << table;
  EXPECT_NE(table.find("train with --optim.lr 0.001\n"), std::string::npos) << table;
  // Deterministic: the same recipe and grid give the same losses bit for bit.
  const LrRangeResult again = find_lr(recipe("mezo-sgd"), grid({0, 1e-3, 1e-2, 1e3}, 12));
  for (size_t i = 0; i < r.trials.size(); ++i)
    EXPECT_EQ(again.trials[i].losses, r.trials[i].losses);
}

// Any method behind the interface: first-order SGD on the answer tokens' loss.
TEST_F(LrRange, FirstOrderSgdToo) {
  Recipe r = recipe("sgd");
  r.task.train_as_classification = false;
  const LrRangeResult result = find_lr(r, grid({0, 1e-1}, 6));
  EXPECT_EQ(result.best_lr, 1e-1) << format_lr_range(result, "sgd");
  EXPECT_LT(result.trials[1].score, result.trials[0].score);
}

// Where no lr of the grid helps, the best is 0 and the table says so.
TEST_F(LrRange, SaysSoWhenNoLrBeatsNotTraining) {
  const LrRangeResult r = find_lr(recipe("mezo-sgd"), grid({1e-2}, 12));
  const std::string table = format_lr_range(r, "mezo-sgd");
  EXPECT_EQ(r.best_lr, 0) << table;
  EXPECT_NE(table.find("best lr: none: no lr of the grid lowered the loss below not training"),
            std::string::npos)
      << table;
}

// `zoft train --find-lr`: prints the table, writes no checkpoint; bad input is one line.
TEST_F(LrRange, CliPrintsTheTableWritesNothingAndRefusesBadInputInOneLine) {
  const std::string src = ZOFT_SOURCE_DIR;
  const fs::path yaml = root_ / "recipe.yaml", out = root_ / "out";
  std::ofstream(yaml) << "model:\n  path: " << (root_ / "model").string() << "\n"
                      << "data:\n  train: " << src
                      << "/tests/fixtures/data/fine_foods_train.jsonl\n"
                      << "  max_seq_length: 64\n"
                      << "task:\n  file: " << src << "/recipes/tasks/fine_foods.yaml\n"
                      << "optim:\n  method: mezo-sgd\n  schedule: constant\n"
                      << "trainer:\n  batch_size: 8\n  seed: 5\n  output_dir: " << out.string()
                      << "\nplacement:\n  threads: 1\n";
  const std::string train = "train '" + yaml.string() + "' ";
  ZoftRun ok = run_zoft(train + "--find-lr --find-lr-grid 0,1e-2 --find-lr-steps 4");
  ASSERT_EQ(ok.status, 0) << ok.output;
  EXPECT_NE(ok.output.find("lr range test: mezo-sgd, 4 steps per lr"), std::string::npos)
      << ok.output;
  EXPECT_NE(ok.output.find("best lr: "), std::string::npos) << ok.output;
  EXPECT_FALSE(fs::exists(out)) << "--find-lr wrote " << out;
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"--find-lr --find-lr-grid ''",
       "--find-lr-grid is empty: give learning rates separated by commas, e.g. 0,1e-5,1e-4"},
      {"--find-lr --find-lr-min 0",
       "--find-lr-min and --find-lr-max must be positive and finite (a log grid), got 0 and "
       "0.001"},
      {"--find-lr --find-lr-grid 1e-5,x",
       "--find-lr-grid: 'x' is not a number (give learning rates separated by commas)"},
      {"--find-lr-steps 5",
       "the --find-lr-* options need --find-lr (the learning-rate range test)"},
      {"--find-lr --find-lr-grid 0,1e-5 --find-lr-points 3",
       "give --find-lr-grid or the log grid's --find-lr-min / -max / -points, not both"}};
  for (const auto& [args, message] : bad) {
    ZoftRun run = run_zoft(train + args);
    EXPECT_EQ(run.status, 1) << args;
    EXPECT_EQ(run.output, "zoft: error: " + message + "\n") << args;
  }
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace zoft
