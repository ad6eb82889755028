// `zoft eval --random-init` and `--device cuda` end to end, when the zoft binary has been built
// (skipped otherwise). A random model's perplexity is about its vocabulary size; on a machine
// with a GPU (and a CUDA build) the GPU's figure equals the CPU's, elsewhere --device cuda is a
// one-line error saying why.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/ops.h"
#include "cli/cli_test_util.h"

namespace zoft {
namespace {

namespace fs = std::filesystem;

nlohmann::json last_json_line(const std::string& output) {
  size_t start = output.rfind('{');
  return nlohmann::json::parse(output.substr(start == std::string::npos ? 0 : start));
}

bool gpu_present() {
  return ops::available(Device::CUDA);
}

class EvalCli : public ::testing::Test {
 protected:
  // A tiny OPT (hidden 64, 2 layers) with OPT's real vocabulary and tokenizer, no weights.
  void SetUp() override {
    if (!fs::exists(ZOFT_BINARY)) GTEST_SKIP() << "zoft is not built";
    dir_ = fs::temp_directory_path() / ("zoft_eval_test_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    nlohmann::json config = {{"model_type", "opt"},
                             {"vocab_size", 50272},
                             {"hidden_size", 64},
                             {"num_hidden_layers", 2},
                             {"num_attention_heads", 4},
                             {"ffn_dim", 128},
                             {"max_position_embeddings", 256},
                             {"word_embed_proj_dim", 64},
                             {"init_std", 0.02}};
    std::ofstream(dir_ / "config.json") << config.dump();
    fs::path gpt2 = fs::path(ZOFT_SOURCE_DIR) / "tests/fixtures/tokenizers/gpt2";
    fs::copy_file(gpt2 / "encoder.json.xz", dir_ / "vocab.json.xz");
    fs::copy_file(gpt2 / "vocab.bpe.xz", dir_ / "merges.txt.xz");
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string eval_args(const std::string& device) const {
    return fmt::format(
        "eval --model '{}' --random-init --data '{}/README.md' --max-tokens 300 "
        "--window 128 --json --device {}",
        dir_.string(), ZOFT_SOURCE_DIR, device);
  }
  fs::path dir_;
};

TEST_F(EvalCli, RandomInitPerplexityIsAboutTheVocabularySize) {
  ZoftRun cpu = run_zoft(eval_args("cpu"));
  ASSERT_EQ(cpu.status, 0) << cpu.output;
  nlohmann::json j = last_json_line(cpu.output);
  EXPECT_NEAR(j.at("mean_nll").get<double>(), std::log(50272.0), 0.5) << cpu.output;
  EXPECT_EQ(j.at("scored_tokens").get<int64_t>(), 299);
}

// Perplexity used to score the compressed bytes of a .xz file; it reads .xz as the task
// readers do, so the figures equal those of the plain file.
TEST_F(EvalCli, PerplexityReadsXzLikeThePlainFile) {
  fs::path plain = dir_ / "text.txt";
  fs::copy_file(fs::path(ZOFT_SOURCE_DIR) / "README.md", plain);
  ASSERT_EQ(std::system(fmt::format("xz -k '{}'", plain.string()).c_str()), 0) << "xz failed";
  auto args = [&](const fs::path& data) {
    return fmt::format(
        "eval --model '{}' --random-init --data '{}' --max-tokens 200 --window 64 --json",
        dir_.string(), data.string());
  };
  ZoftRun a = run_zoft(args(plain));
  ZoftRun b = run_zoft(args(dir_ / "text.txt.xz"));
  ASSERT_EQ(a.status, 0) << a.output;
  ASSERT_EQ(b.status, 0) << b.output;
  EXPECT_EQ(last_json_line(a.output).at("tokens"), last_json_line(b.output).at("tokens"));
  EXPECT_EQ(last_json_line(a.output).at("mean_nll"), last_json_line(b.output).at("mean_nll"));
}

// Counts are checked before the model is read, each error naming its flag.
TEST_F(EvalCli, BadCountsNameTheFlag) {
  const std::string base = fmt::format("eval --model '{}' --random-init --data '{}/README.md' ",
                                       dir_.string(), ZOFT_SOURCE_DIR);
  const std::pair<const char*, const char*> cases[] = {
      {"--batch-size -3", "--batch-size must be positive, got -3"},
      {"--batch-size 0", "--batch-size must be positive, got 0"},
      {"--max-examples -3", "--max-examples must be >= 0"},
      {"--window -5", "--window must be >= 0"},
      {"--window 100000", "--window 100000 exceeds the model's max_position_embeddings 256"},
      {"--threads 100000", "--threads: 100000 threads is more than 4 x the"},
      {"--threads -2", "--threads: threads must be >= 0"}};
  for (auto [flag, want] : cases) {
    ZoftRun run = run_zoft(base + flag);
    EXPECT_EQ(run.status, 1) << flag << ": " << run.output;
    EXPECT_NE(run.output.find(want), std::string::npos) << flag << ": " << run.output;
  }
}

TEST_F(EvalCli, DeviceCuda) {
  ZoftRun gpu = run_zoft(eval_args("cuda"));
  if (!gpu_present()) {  // this build has no CUDA backend, or this machine no GPU
    EXPECT_EQ(gpu.status, 1) << gpu.output;
    EXPECT_NE(gpu.output.find("--device cuda: "), std::string::npos) << gpu.output;
    EXPECT_NE(gpu.output.find("use --device cpu"), std::string::npos) << gpu.output;
    return;
  }
  ASSERT_EQ(gpu.status, 0) << gpu.output;
  ZoftRun cpu = run_zoft(eval_args("cpu"));
  ASSERT_EQ(cpu.status, 0) << cpu.output;
  double a = last_json_line(gpu.output).at("mean_nll").get<double>();
  double b = last_json_line(cpu.output).at("mean_nll").get<double>();
  EXPECT_NEAR(a, b, 1e-3 * b);
}

}  // namespace
}  // namespace zoft
