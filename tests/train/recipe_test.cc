#include "train/recipe.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "train/metrics.h"

namespace zoft {
namespace {

namespace fs = std::filesystem;

std::string write_temp(const std::string& name, const std::string& text) {
  fs::path p = fs::temp_directory_path() / ("zoft_recipe_" + std::to_string(getpid()) + "_" + name);
  std::ofstream(p) << text;
  return p.string();
}

const char* kGood =
    "model:\n  path: m\n"
    "data:\n  train: t.jsonl\n"
    "task:\n  name: sst2\n"
    "optim:\n  lr: 1e-6\n"
    "trainer:\n  steps: 10\n";

std::string error_of(const std::string& text,
                     const std::vector<std::pair<std::string, std::string>>& o = {}) {
  std::string path = write_temp("r.yaml", text);
  try {
    load_recipe(path, o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Recipe, LoadsAndOverrides) {
  std::string path = write_temp("good.yaml", kGood);
  Recipe r = load_recipe(path, parse_overrides({"--optim.lr", "2e-5", "--trainer.steps=7"}));
  EXPECT_EQ(r.model.path, "m");
  EXPECT_DOUBLE_EQ(r.optim.lr, 2e-5);
  EXPECT_EQ(r.trainer.steps, 7);
  EXPECT_EQ(r.task.name, "sst2");
  // Printing and reading back gives the same recipe.
  std::string again = write_temp("again.yaml", recipe_to_yaml(r));
  Recipe r2 = load_recipe(again);
  EXPECT_EQ(recipe_to_yaml(r2), recipe_to_yaml(r));
}

TEST(Recipe, RandomInit) {
  Recipe r = load_recipe(write_temp("ri.yaml", kGood), {{"model.random_init", "true"}});
  EXPECT_TRUE(r.model.random_init);
  EXPECT_NE(recipe_to_yaml(r).find("random_init: true"), std::string::npos);
  EXPECT_FALSE(load_recipe(write_temp("ri2.yaml", kGood)).model.random_init);
  // Offload streams layers from the checkpoint, which a random_init model does not have.
  EXPECT_NE(error_of(kGood, {{"model.random_init", "true"}, {"placement.max_memory", "cpu=1GiB"}})
                .find("drop placement.max_memory"),
            std::string::npos);
}

TEST(Recipe, UnknownKeyNamesFileLineAndKey) {
  std::string e = error_of(std::string(kGood) + "  learning_rate: 3\n");
  EXPECT_NE(e.find("unknown key 'trainer.learning_rate'"), std::string::npos) << e;
  EXPECT_NE(e.find("line 11"), std::string::npos) << e;
}

TEST(Recipe, WrongTypes) {
  EXPECT_NE(error_of("model:\n  path: m\ndata:\n  train: t\ntask:\n  name: x\noptim:\n  lr: fast\n")
                .find("optim.lr: must be a number, got 'fast'"),
            std::string::npos);
  EXPECT_NE(error_of(kGood, {{"trainer.steps", "ten"}}).find("must be an integer"),
            std::string::npos);
  EXPECT_NE(error_of(kGood, {{"logging.jsonl", "maybe"}}).find("true or false"), std::string::npos);
  EXPECT_NE(error_of(kGood, {{"optim.nope", "1"}}).find("unknown recipe key"), std::string::npos);
  EXPECT_NE(error_of(kGood, {{"optim.lr", "-1"}}).find("must be positive"), std::string::npos);
  EXPECT_NE(error_of(kGood, {{"optim.schedule", "exp"}}).find("not one of"), std::string::npos);
}

TEST(Recipe, MissingAndMalformed) {
  EXPECT_NE(error_of("data:\n  train: t\n").find("model.path is required"), std::string::npos);
  EXPECT_NE(error_of("model: [1, 2\n").find("invalid YAML"), std::string::npos);
  EXPECT_NE(error_of("- a\n- b\n").find("mapping of sections"), std::string::npos);
  EXPECT_NE(error_of("? [a, b]\n: {x: 1}\n").find("plain word"), std::string::npos);
  EXPECT_NE(error_of("model:\n  ? {k: v}\n  : 1\n").find("plain word"), std::string::npos);
  EXPECT_THROW(load_recipe("/nonexistent/recipe.yaml"), Error);
  EXPECT_THROW(parse_overrides({"--optim.lr"}), Error);
  EXPECT_THROW(parse_overrides({"stray"}), Error);
}

// yaml-cpp keeps both entries of a repeated key (the last would win): refused, naming the key.
TEST(Recipe, DuplicateKeysAreRefused) {
  std::string e = error_of(std::string(kGood) + "  steps: 20\n");
  EXPECT_NE(e.find("line 11: 'trainer.steps' is given twice"), std::string::npos) << e;
  e = error_of(std::string(kGood) + "trainer:\n  batch_size: 4\n");
  EXPECT_NE(e.find("line 11: 'trainer' is given twice"), std::string::npos) << e;
}

TEST(Recipe, NegativeCountsAndConflictsAreRefused) {
  auto expect = [](const std::vector<std::pair<std::string, std::string>>& o,
                   const std::string& want) {
    std::string e = error_of(kGood, o);
    EXPECT_NE(e.find(want), std::string::npos) << "got: " << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  };
  expect({{"task.file", "t.yaml"}}, "task.name 'sst2' and task.file 't.yaml' both given");
  expect({{"placement.threads", "-2"}}, "placement.threads: threads must be >= 0");
  expect({{"placement.threads", "100000"}},
         "placement.threads: 100000 threads is more than 4 x the");
  expect({{"logging.log_interval", "-1"}}, "logging.log_interval must be >= 0, got -1");
  expect({{"task.k_shot", "-16"}}, "task.k_shot must be >= 0, got -16");
  expect({{"data.train_samples", "-5"}}, "data.train_samples must be >= 0, got -5");
  expect({{"optim.warmup_steps", "-3"}}, "optim.warmup_steps must be >= 0, got -3");
  expect({{"optim.method", "fzoo"}}, "optim.method fzoo needs optim.samples >= 2");
  expect({{"optim.method", "fzo"}}, "optim.method");
}

TEST(Metrics, Crc32cKnownAnswer) {
  // RFC 3720 test vector: 32 bytes of zeros.
  std::vector<uint8_t> zeros(32, 0);
  EXPECT_EQ(crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
}

// TensorBoard's own reader loads our event files with the right tags, steps and values.
TEST(Metrics, TensorBoardReadsOurEvents) {
  if (std::system("python3 -c 'import tensorboard' 2>/dev/null") != 0)
    GTEST_SKIP() << "python3 package tensorboard not installed (scripts/setup.sh installs it)";
  fs::path dir = fs::temp_directory_path() / ("zoft_tb_" + std::to_string(getpid()));
  fs::remove_all(dir);
  {
    TensorBoardWriter tb(dir.string());
    for (int step = 1; step <= 5; ++step) {
      tb.scalar("train/loss", step, 1.0 / step);
      tb.scalar("eval/accuracy", step * 10, 0.5 + 0.01 * step);
    }
  }
  std::string script = write_temp(
      "tb.py",
      "import sys\n"
      "from tensorboard.backend.event_processing.event_accumulator import EventAccumulator\n"
      "ea = EventAccumulator(sys.argv[1]); ea.Reload()\n"
      "loss = ea.Scalars('train/loss'); acc = ea.Scalars('eval/accuracy')\n"
      "assert [e.step for e in loss] == [1,2,3,4,5], loss\n"
      "assert abs(loss[3].value - 0.25) < 1e-6\n"
      "assert [e.step for e in acc] == [10,20,30,40,50]\n"
      "assert abs(acc[4].value - 0.55) < 1e-6\n"
      "print('ok')\n");
  std::string cmd = "python3 " + script + " " + dir.string() + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  char buf[4096];
  std::string output;
  while (fgets(buf, sizeof buf, p)) output += buf;
  int status = pclose(p);
  EXPECT_EQ(status, 0) << output;
  EXPECT_NE(output.find("ok"), std::string::npos) << output;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace zoft
