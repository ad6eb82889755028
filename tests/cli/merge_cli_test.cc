// `zoft merge BASE ADAPTER OUT` end to end on the golden llama and its PEFT adapter
// (tests/fixtures/lora/, tools/make_lora_golden.py), and its bad input: one line, exit 1.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/cli_test_util.h"

namespace zoft {
namespace {

namespace fs = std::filesystem;

class MergeCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(ZOFT_BINARY)) GTEST_SKIP() << "zoft is not built";
    dir_ = fs::temp_directory_path() / ("zoft_merge_test_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  static std::string fixture(const std::string& path) {
    return std::string(ZOFT_SOURCE_DIR) + "/tests/fixtures/" + path;
  }
  fs::path dir_;
};

TEST_F(MergeCli, WritesALoadableMergedModel) {
  fs::path out = dir_ / "merged";
  ZoftRun run = run_zoft(fmt::format("merge '{}' '{}' '{}' --json", fixture("golden/llama"),
                                     fixture("lora/llama/adapter"), out.string()));
  ASSERT_EQ(run.status, 0) << run.output;
  nlohmann::json j = nlohmann::json::parse(run.output.substr(run.output.rfind('{')));
  EXPECT_EQ(j.at("merged_weights").get<int>(), 14);  // 7 projections x 2 layers
  EXPECT_TRUE(fs::exists(out / "model.safetensors"));
  EXPECT_TRUE(fs::exists(out / "config.json"));
  ZoftRun inspect = run_zoft(fmt::format("inspect '{}'", out.string()));
  EXPECT_EQ(inspect.status, 0) << inspect.output;
}

TEST_F(MergeCli, BadInputIsOneLine) {
  const std::pair<std::string, std::string> cases[] = {
      // An adapter of another architecture.
      {fmt::format("merge '{}' '{}' '{}'", fixture("golden/llama"), fixture("lora/gpt2/adapter"),
                   (dir_ / "o").string()),
       "matches no linear layer of this llama model"},
      // Not an adapter directory.
      {fmt::format("merge '{}' '{}' '{}'", fixture("golden/llama"), fixture("golden/opt"),
                   (dir_ / "o").string()),
       "not a PEFT adapter directory"},
      // The output is the base.
      {fmt::format("merge '{}' '{}' '{}'", fixture("golden/llama"), fixture("lora/llama/adapter"),
                   fixture("golden/llama")),
       "the output directory is an input"},
  };
  for (const auto& [args, expect] : cases) {
    ZoftRun run = run_zoft(args);
    EXPECT_EQ(run.status, 1) << run.output;
    EXPECT_NE(run.output.find(expect), std::string::npos) << run.output;
    EXPECT_EQ(std::count(run.output.begin(), run.output.end(), '\n'), 1) << run.output;
  }
}

}  // namespace
}  // namespace zoft
