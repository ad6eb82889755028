// Kill the trainer at any point (mid-step, mid-save, at random times) and resume: the final
// weights equal an uninterrupted run's bit for bit, and half-written checkpoints are never used.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "runtime/llama_maker.h"

namespace zoft::test {
namespace {

namespace fs = std::filesystem;

class Resume : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("zoft_resume_" + std::to_string(getpid()));
    fs::create_directories(root_);
    make_llama((root_ / "model").string(), LlamaShape{});
    std::string src = ZOFT_SOURCE_DIR;
    std::ofstream(root_ / "recipe.yaml")
        << "model:\n  path: " << (root_ / "model").string() << "\n"
        << "data:\n  train: " << src << "/tests/fixtures/data/fine_foods_train.jsonl\n"
        << "  eval: " << src << "/tests/fixtures/data/fine_foods_test.jsonl.xz\n"
        << "  train_samples: 16\n  eval_samples: 8\n  max_seq_length: 96\n"
        << "task:\n  file: " << src << "/recipes/tasks/fine_foods.yaml\n"
        << "optim:\n  lr: 1.0e-3\n  eps: 1.0e-3\n  schedule: linear\n  warmup_steps: 2\n"
        << "trainer:\n  steps: 12\n  batch_size: 4\n  save_interval: 3\n  eval_interval: 6\n"
        << "  save_total_limit: 2\n  seed: 5\n"
        << "placement:\n  threads: 1\n";
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }

  // Runs `zoft train` (with recipe overrides `extra`) to completion or until `kill_after`
  // seconds; returns the exit status (-SIGKILL when killed).
  static int run(const std::string& out, double kill_after = -1, const std::string& fault = "",
                 const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {ZOFT_BINARY, "train", (root_ / "recipe.yaml").string(),
                                     "--trainer.output_dir", out};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = fork();
    if (pid == 0) {
      if (!fault.empty()) setenv("ZOFT_FAULT", fault.c_str(), 1);
      int devnull = open("/dev/null", O_WRONLY);
      dup2(devnull, 1);
      dup2(devnull, 2);
      execv(ZOFT_BINARY, argv.data());
      _exit(127);
    }
    if (kill_after >= 0) {
      std::this_thread::sleep_for(std::chrono::duration<double>(kill_after));
      kill(pid, SIGKILL);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) return -WTERMSIG(status);
    return WEXITSTATUS(status);
  }

  static std::string final_weights(const std::string& out) {
    std::ifstream in(fs::path(out) / "checkpoint-12" / "model.safetensors", std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }

  static fs::path root_;
};

fs::path Resume::root_;

TEST_F(Resume, KilledMidStepOrMidSaveResumesBitExactly) {
  std::string reference = (root_ / "uninterrupted").string();
  auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(run(reference), 0);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::string expected = final_weights(reference);
  ASSERT_GT(expected.size(), 1000u);

  // Deterministic faults: inside step 5 (between two checkpoints) and inside the save of step 6.
  for (const char* fault : {"step:5", "save:6", "save:3", "step:1"}) {
    std::string out = (root_ / (std::string("fault_") + fault)).string();
    EXPECT_EQ(run(out, -1, fault), -SIGKILL) << fault;
    EXPECT_EQ(run(out), 0) << fault;
    EXPECT_TRUE(final_weights(out) == expected) << "after fault " << fault;
  }
  // Kills at arbitrary moments, several in a row on one output directory.
  std::string out = (root_ / "random_kills").string();
  for (double fraction : {0.35, 0.6, 0.85}) run(out, seconds * fraction);
  EXPECT_EQ(run(out), 0);
  EXPECT_TRUE(final_weights(out) == expected);
}

// mezo-momentum keeps the last steps' projected gradients in trainer_state.json: a run killed
// inside a step or a save, across the evaluation at step 6, resumes to the same weights.
TEST_F(Resume, MomentumKilledMidStepOrMidSaveResumesBitExactly) {
  const std::vector<std::string> momentum = {
      "--optim.method", "mezo-momentum", "--optim.momentum", "0.8", "--optim.momentum_window", "4"};
  std::string reference = (root_ / "momentum").string();
  ASSERT_EQ(run(reference, -1, "", momentum), 0);
  std::string expected = final_weights(reference);
  ASSERT_GT(expected.size(), 1000u);
  std::string plain = (root_ / "momentum_plain").string();
  ASSERT_EQ(run(plain), 0);
  EXPECT_FALSE(final_weights(plain) == expected);  // the momentum terms did change the steps
  for (const char* fault : {"step:5", "save:6", "step:8"}) {
    std::string out = (root_ / (std::string("momentum_") + fault)).string();
    EXPECT_EQ(run(out, -1, fault, momentum), -SIGKILL) << fault;
    EXPECT_EQ(run(out, -1, "", momentum), 0) << fault;
    EXPECT_TRUE(final_weights(out) == expected) << "after fault " << fault;
  }
}

// fzoo runs n + 1 forwards a step with a normalised pending update: killed inside a step or a
// save, it resumes to the same weights as the straight run.
TEST_F(Resume, FzooKilledMidStepOrMidSaveResumesBitExactly) {
  const std::vector<std::string> fzoo = {"--optim.method", "fzoo", "--optim.samples", "3",
                                         "--optim.lr",     "1e-6"};
  std::string reference = (root_ / "fzoo").string();
  ASSERT_EQ(run(reference, -1, "", fzoo), 0);
  std::string expected = final_weights(reference);
  ASSERT_GT(expected.size(), 1000u);
  std::string plain = (root_ / "fzoo_mezo").string();
  ASSERT_EQ(run(plain), 0);
  EXPECT_FALSE(final_weights(plain) == expected);
  for (const char* fault : {"step:5", "save:6"}) {
    std::string out = (root_ / (std::string("fzoo_") + fault)).string();
    EXPECT_EQ(run(out, -1, fault, fzoo), -SIGKILL) << fault;
    EXPECT_EQ(run(out, -1, "", fzoo), 0) << fault;
    EXPECT_TRUE(final_weights(out) == expected) << "after fault " << fault;
  }
}

TEST_F(Resume, KeepsAtMostSaveTotalLimitCheckpoints) {
  std::string out = (root_ / "limit").string();
  ASSERT_EQ(run(out), 0);
  int count = 0;
  for (const auto& e : fs::directory_iterator(out))
    count += e.path().filename().string().rfind("checkpoint-", 0) == 0;
  EXPECT_LE(count, 3);  // save_total_limit 2, plus the best one if it is older
  EXPECT_TRUE(fs::exists(fs::path(out) / "checkpoint-12" / "trainer_state.json"));
  EXPECT_TRUE(fs::exists(fs::path(out) / "metrics.jsonl"));
}

}  // namespace
}  // namespace zoft::test
