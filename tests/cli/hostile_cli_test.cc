// Hostile command lines: each is refused with one line that names the command, file or flag
// and says what to do, and a non-zero exit, before anything is loaded.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "cli/cli_test_util.h"

namespace zoft {
namespace {

namespace fs = std::filesystem;

class HostileCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(ZOFT_BINARY)) GTEST_SKIP() << "zoft is not built";
  }
  // `zoft args` must fail with exit status 1 and print `want`, on one line.
  static void expect_refused(const std::string& args, const std::string& want) {
    ZoftRun run = run_zoft(args);
    EXPECT_EQ(run.status, 1) << args << ": " << run.output;
    EXPECT_NE(run.output.find(want), std::string::npos) << args << ": " << run.output;
    EXPECT_LE(std::count(run.output.begin(), run.output.end(), '\n'), 1) << run.output;
  }
};

TEST_F(HostileCli, UnknownCommandIsNamed) {
  expect_refused("frobnicate",
                 "zoft: error: unknown command 'frobnicate': the commands are inspect, tokenize, "
                 "generate, eval, train, convert");
}

TEST_F(HostileCli, TrainOnADirectory) {
  fs::path dir = fs::temp_directory_path() / ("zoft_train_dir_" + std::to_string(getpid()));
  fs::create_directories(dir);
  expect_refused("train '" + dir.string() + "'",
                 dir.string() + ": is a directory, expected a recipe YAML file");
  fs::remove_all(dir);
}

// The model does not exist: each flag must be refused before it is looked for.
TEST_F(HostileCli, GenerateCountsAreChecked) {
  const std::string base = "generate --model /nonexistent/model --prompt hi ";
  expect_refused(base + "--seed -1", "--seed must be >= 0, got -1");
  expect_refused(base + "--max-new-tokens 99999999999999999999", "--max-new-tokens");
  expect_refused(base + "--max-new-tokens 9999999999", "--max-new-tokens must be between 0 and");
  expect_refused(base + "--max-new-tokens -1", "--max-new-tokens must be between 0 and");
  expect_refused(base + "--threads 100000", "--threads: 100000 threads is more than 4 x the");
}

}  // namespace
}  // namespace zoft
