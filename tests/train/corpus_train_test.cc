// `zoft train` on a causal-LM corpus (no task): blocks of text, eval loss and perplexity, for
// every training method; first-order runs resume bit-exactly after a kill, as MeZO runs do.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "runtime/llama_maker.h"

namespace zoft::test {
namespace {

namespace fs = std::filesystem;

class CorpusTrain : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("zoft_corpus_" + std::to_string(getpid()));
    fs::create_directories(root_);
    make_llama((root_ / "model").string(), LlamaShape{});
    // A tiny corpus of real prose: every line of the first chapters of Persuasion would do, but
    // a few repeated sentences make the loss fall fast enough to see in a handful of steps.
    std::ofstream train(root_ / "train.txt"), eval(root_ / "eval.txt");
    for (int i = 0; i < 40; ++i)
      train << "Sir Walter Elliot, of Kellynch Hall, in Somersetshire, was a man who, for his own "
               "amusement, never took up any book but the Baronetage.\n";
    for (int i = 0; i < 8; ++i)
      eval << "Sir Walter Elliot, of Kellynch Hall, never took up any book but the Baronetage.\n";
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }

  static std::string recipe(const std::string& method, const std::string& extra = "") {
    std::ostringstream r;
    r << "model:\n  path: " << (root_ / "model").string() << "\n"
      << "data:\n  train: " << (root_ / "train.txt").string() << "\n"
      << "  eval: " << (root_ / "eval.txt").string() << "\n  max_seq_length: 32\n"
      << "optim:\n  method: " << method << "\n"
      << extra << "trainer:\n  steps: 6\n  batch_size: 4\n  seed: 3\n  save_interval: 3\n"
      << "placement:\n  threads: 1\nlogging:\n  log_interval: 1\n  tensorboard: false\n";
    fs::path path = root_ / (method + std::to_string(std::hash<std::string>()(extra)) + ".yaml");
    std::ofstream(path) << r.str();
    return path.string();
  }

  // Runs `zoft train RECIPE --trainer.output_dir OUT [args]`; returns the exit status.
  static int run(const std::string& recipe_path, const std::string& out,
                 const std::string& args = "") {
    std::string cmd = std::string(ZOFT_BINARY) + " train " + recipe_path +
                      " --trainer.output_dir " + out + " " + args + " > " + out + ".log 2>&1";
    int status = std::system(cmd.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  // Every metrics.jsonl row with `key`, in file order.
  static std::vector<double> metric(const std::string& out, const std::string& key) {
    std::ifstream in(fs::path(out) / "metrics.jsonl");
    std::vector<double> values;
    for (std::string line; std::getline(in, line);) {
      nlohmann::json row = nlohmann::json::parse(line);
      if (row.contains(key)) values.push_back(row[key].get<double>());
    }
    return values;
  }

  // Like run(), with ZOFT_FAULT set: the trainer kills itself at that point (train/fault.h).
  static int run_with_fault(const std::string& recipe_path, const std::string& out,
                            const std::string& fault) {
    std::string cmd = "ZOFT_FAULT=" + fault + " " + ZOFT_BINARY + " train " + recipe_path +
                      " --trainer.output_dir " + out + " > " + out + ".killed.log 2>&1";
    int status = std::system(cmd.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  static std::string bytes(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }

  static fs::path root_;
};

fs::path CorpusTrain::root_;

TEST_F(CorpusTrain, MezoReportsEvalLossAndPerplexity) {
  std::string out = (root_ / "mezo").string();
  ASSERT_EQ(run(recipe("mezo-sgd", "  lr: 1.0e-4\n"), out), 0) << bytes(out + ".log");
  std::vector<double> loss = metric(out, "eval/loss"), ppl = metric(out, "eval/perplexity");
  ASSERT_EQ(loss.size(), 2u);  // before and after
  ASSERT_EQ(ppl.size(), 2u);
  for (size_t i = 0; i < loss.size(); ++i) {
    EXPECT_GT(loss[i], 0);
    EXPECT_NEAR(ppl[i], std::exp(loss[i]), 1e-6 * ppl[i]);  // metrics.jsonl rounds
  }
  EXPECT_TRUE(fs::exists(fs::path(out) / "checkpoint-6" / "model.safetensors"));
}

constexpr const char* kAdamw = "  lr: 3.0e-3\n  weight_decay: 0.01\n  schedule: linear\n";

TEST_F(CorpusTrain, AdamwLowersTheEvalLoss) {
  std::string out = (root_ / "adamw").string();
  ASSERT_EQ(run(recipe("adamw", kAdamw), out), 0) << bytes(out + ".log");
  std::vector<double> eval = metric(out, "eval/loss"), norm = metric(out, "train/grad_norm");
  ASSERT_EQ(eval.size(), 2u);
  EXPECT_LT(eval[1], eval[0] - 0.5) << "before " << eval[0] << ", after " << eval[1];
  ASSERT_EQ(norm.size(), 6u);
  for (double n : norm) EXPECT_TRUE(std::isfinite(n) && n > 0);
  EXPECT_TRUE(fs::exists(fs::path(out) / "checkpoint-6" / "optimizer.safetensors"));
}

TEST_F(CorpusTrain, AdamwKilledMidRunResumesBitExactly) {
  std::string reference = (root_ / "adamw_ref").string(), killed = (root_ / "adamw_kill").string();
  std::string r = recipe("adamw", kAdamw);
  ASSERT_EQ(run(r, reference), 0) << bytes(reference + ".log");
  EXPECT_NE(run_with_fault(r, killed, "step:5"), 0);  // SIGKILL after step 5, checkpoint-3 kept
  ASSERT_TRUE(fs::exists(fs::path(killed) / "checkpoint-3"));
  ASSERT_FALSE(fs::exists(fs::path(killed) / "checkpoint-6"));
  ASSERT_EQ(run(r, killed), 0) << bytes(killed + ".log");
  for (const char* file : {"model.safetensors", "optimizer.safetensors"})
    EXPECT_EQ(bytes(fs::path(reference) / "checkpoint-6" / file),
              bytes(fs::path(killed) / "checkpoint-6" / file))
        << file;
}

TEST_F(CorpusTrain, GradientCheckpointingGivesTheSameWeights) {
  std::string plain = (root_ / "sgd_plain").string(), ckpt = (root_ / "sgd_ckpt").string();
  std::string r = recipe("sgd", "  lr: 1.0e-2\n  momentum: 0.9\n");
  ASSERT_EQ(run(r, plain), 0) << bytes(plain + ".log");
  ASSERT_EQ(run(r, ckpt, "--trainer.gradient_checkpointing true"), 0) << bytes(ckpt + ".log");
  EXPECT_EQ(bytes(fs::path(plain) / "checkpoint-6" / "model.safetensors"),
            bytes(fs::path(ckpt) / "checkpoint-6" / "model.safetensors"));
}

TEST_F(CorpusTrain, PromptCompletionTrainsOnTheCompletion) {
  std::ofstream sft(root_ / "sft.jsonl");
  for (int i = 0; i < 16; ++i)
    sft << "{\"prompt\": \"Who lived at Kellynch Hall?\", \"completion\": \" Sir Walter "
           "Elliot.\"}\n";
  sft.close();
  std::string out = (root_ / "sft").string(), file = (root_ / "sft.jsonl").string();
  ASSERT_EQ(run(recipe("adamw", kAdamw), out,
                "--data.format prompt_completion --data.train " + file + " --data.eval " + file),
            0)
      << bytes(out + ".log");
  std::vector<double> eval = metric(out, "eval/loss");
  ASSERT_EQ(eval.size(), 2u);
  EXPECT_LT(eval[1], eval[0] - 0.5) << "before " << eval[0] << ", after " << eval[1];
}

TEST_F(CorpusTrain, JsonlLineWithoutTheTextFieldIsOneClearError) {
  std::ofstream(root_ / "bad.jsonl") << "{\"text\": \"fine\"}\n{\"body\": \"no text\"}\n";
  std::string out = (root_ / "bad").string();
  EXPECT_NE(run(recipe("adamw", kAdamw), out, "--data.train " + (root_ / "bad.jsonl").string()), 0);
  std::string log = bytes(out + ".log");
  EXPECT_NE(log.find("bad.jsonl:2"), std::string::npos) << log;
  EXPECT_NE(log.find("'text'"), std::string::npos) << log;
}

TEST_F(CorpusTrain, NegativeClipNormIsOneClearError) {
  std::string out = (root_ / "clip").string();
  EXPECT_NE(run(recipe("adamw", kAdamw), out, "--optim.max_grad_norm -1"), 0);
  std::string log = bytes(out + ".log");
  EXPECT_NE(log.find("optim.max_grad_norm"), std::string::npos) << log;
}

TEST_F(CorpusTrain, EmptyCorpusIsOneClearError) {
  std::ofstream(root_ / "empty.txt").close();
  std::string out = (root_ / "empty").string();
  EXPECT_NE(run(recipe("adamw", kAdamw), out, "--data.train " + (root_ / "empty.txt").string()), 0);
  std::string log = bytes(out + ".log");
  EXPECT_NE(log.find("empty.txt"), std::string::npos) << log;
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << log;
}

TEST_F(CorpusTrain, CorpusShorterThanOneBlockIsOneClearError) {
  std::ofstream(root_ / "short.txt") << "Too short.\n";
  std::string out = (root_ / "short").string();
  EXPECT_NE(run(recipe("mezo-sgd"), out, "--data.train " + (root_ / "short.txt").string()), 0);
  std::string log = bytes(out + ".log");
  EXPECT_NE(log.find("fewer than one block"), std::string::npos) << log;
}

TEST_F(CorpusTrain, UnknownMethodIsOneClearError) {
  std::string out = (root_ / "adam").string();
  EXPECT_NE(run(recipe("adam"), out), 0);
  std::string log = bytes(out + ".log");
  EXPECT_NE(log.find("optim.method"), std::string::npos) << log;
  EXPECT_NE(log.find("adamw"), std::string::npos) << log;
}

}  // namespace
}  // namespace zoft::test
