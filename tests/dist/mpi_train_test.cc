// `mpirun -np N zoft train` against one process with the same global batch and seed: the final
// weights are the same bytes. Also: a rank killed mid-run ends the job with a message and the
// job resumes bit-exactly; a hung rank trips the watchdog; bad launches stop every rank cleanly.
// Skipped (with a message) where this build has no MPI or no mpirun.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "dist/communicator.h"
#include "runtime/llama_maker.h"
#include "train/output_lock.h"

namespace zoft::test {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

#ifdef ZOFT_MPIRUN
const char* kMpirun = ZOFT_MPIRUN;
#else
const char* kMpirun = "";
#endif

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

int count_of(const std::string& text, const std::string& word) {
  int n = 0;
  for (size_t at = text.find(word); at != std::string::npos; at = text.find(word, at + 1)) ++n;
  return n;
}

struct Launched {
  int status = 0;  // exit status, or -signal
  double seconds = 0;
  std::string output;  // stdout + stderr
};

class MpiTrain : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("zoft_dist_" + std::to_string(getpid()));
    fs::create_directories(root_);
    make_llama((root_ / "model").string(), LlamaShape{});
    const std::string src = ZOFT_SOURCE_DIR;
    // batch 6: 1, 2 and 3 ranks split it evenly; 4 ranks cannot.
    std::ofstream(root_ / "recipe.yaml")
        << "model:\n  path: " << (root_ / "model").string() << "\n"
        << "data:\n  train: " << src << "/tests/fixtures/data/fine_foods_train.jsonl\n"
        << "  eval: " << src << "/tests/fixtures/data/fine_foods_test.jsonl.xz\n"
        << "  train_samples: 12\n  eval_samples: 14\n  max_seq_length: 96\n"
        << "task:\n  file: " << src << "/recipes/tasks/fine_foods.yaml\n"
        << "optim:\n  lr: 1.0e-3\n  eps: 1.0e-3\n  schedule: linear\n  warmup_steps: 2\n"
        << "trainer:\n  steps: 6\n  batch_size: 6\n  save_interval: 3\n  eval_interval: 3\n  seed: "
           "5\n"
        << "placement:\n  threads: 1\n";
    Launched single = run({ZOFT_BINARY, "train", recipe(), "--trainer.output_dir", out("single")});
    ASSERT_EQ(single.status, 0) << single.output;
    reference_ = slurp(fs::path(out("single")) / "checkpoint-6" / "model.safetensors");
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }

  void SetUp() override {
    if (!dist::mpi_available())
      GTEST_SKIP() << "this build has no MPI (apt-get install libopenmpi-dev openmpi-bin)";
    if (std::string(kMpirun).empty() || access(kMpirun, X_OK) != 0)
      GTEST_SKIP() << "no mpirun found (apt-get install openmpi-bin)";
    ASSERT_GT(reference_.size(), 1000u);
  }

  static std::string recipe() { return (root_ / "recipe.yaml").string(); }
  static std::string out(const std::string& name) { return (root_ / name).string(); }

  // mpirun with what CI containers need: root, 2 cores for up to 4 ranks, no ptrace (CMA).
  static std::vector<std::string> mpirun() {
    return {kMpirun, "--oversubscribe", "--bind-to",
            "none",  "--mca",           "btl_vader_single_copy_mechanism",
            "none"};
  }
  static std::vector<std::string> zoft_train(const std::string& out_dir) {
    return {ZOFT_BINARY, "train", recipe(), "--trainer.output_dir", out_dir};
  }
  static std::vector<std::string> mpirun_np(int np, const std::string& out_dir) {
    std::vector<std::string> argv = mpirun();
    argv.insert(argv.end(), {"-np", std::to_string(np)});
    for (const std::string& a : zoft_train(out_dir)) argv.push_back(a);
    return argv;
  }

  // Runs argv to completion; `while_running(pid)` is called once the process has started.
  static Launched run(const std::vector<std::string>& argv,
                      const std::function<void(pid_t)>& while_running = {}) {
    fs::path log = root_ / ("log-" + std::to_string(counter_++));
    auto start = Clock::now();
    pid_t pid = fork();
    if (pid == 0) {
      setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
      setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
      // Leak checking (ASan builds) would flag Open MPI's own allocations at exit.
      setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      std::vector<char*> args;
      for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    if (while_running) while_running(pid);
    int status = 0;
    waitpid(pid, &status, 0);
    Launched r;
    r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    r.status = WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
    r.output = slurp(log);
    return r;
  }

  static std::string final_weights(const std::string& out_dir) {
    return slurp(fs::path(out_dir) / "checkpoint-6" / "model.safetensors");
  }

  // The pid of the child of `parent` that runs rank `rank` (Open MPI's mpirun forks the ranks
  // of its own node itself), or -1 after `seconds`.
  static pid_t rank_pid(pid_t parent, int rank, double seconds) {
    const std::string want = "OMPI_COMM_WORLD_RANK=" + std::to_string(rank);
    for (auto start = Clock::now();
         std::chrono::duration<double>(Clock::now() - start).count() < seconds;) {
      for (const auto& e : fs::directory_iterator("/proc")) {
        std::string name = e.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        std::string stat = slurp(e.path() / "stat");
        size_t close = stat.rfind(')');
        if (close == std::string::npos) continue;
        std::istringstream fields(stat.substr(close + 2));
        std::string state;
        pid_t ppid = 0;
        fields >> state >> ppid;
        if (ppid != parent) continue;
        std::string env = slurp(e.path() / "environ");
        for (size_t at = 0; at < env.size(); at = env.find('\0', at) + 1) {
          if (env.compare(at, want.size() + 1, want + '\0') == 0) return pid_t(std::stoi(name));
          if (env.find('\0', at) == std::string::npos) break;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }

  static fs::path root_;
  static std::string reference_;
  static inline int counter_ = 0;
};

fs::path MpiTrain::root_;
std::string MpiTrain::reference_;

TEST_F(MpiTrain, TwoAndThreeRanksGiveTheOneProcessWeightsBitForBit) {
  for (int np : {2, 3}) {
    std::string dir = out("np" + std::to_string(np));
    std::vector<std::string> argv = mpirun_np(np, dir);
    if (np == 3) argv.insert(argv.end(), {"--trainer.schedule", "plain"});  // == zo2, bit for bit
    Launched r = run(argv);
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find(std::to_string(np) + " ranks (mpi)"), std::string::npos) << r.output;
    EXPECT_EQ(count_of(r.output, "trained 6 steps"), 1) << "one summary per job:\n" << r.output;
    EXPECT_TRUE(final_weights(dir) == reference_)
        << np << " ranks: final weights differ from one process's";
    // The same training losses, projected gradients and eval accuracies (eval is sharded over
    // the ranks and the counts summed).
    auto values = [](const std::string& dir) {
      std::vector<std::string> v;
      std::ifstream in(fs::path(dir) / "metrics.jsonl");
      for (std::string line; std::getline(in, line);) {
        nlohmann::json j = nlohmann::json::parse(line);
        for (const char* key : {"train/loss", "train/projected_grad", "eval/accuracy"})
          if (j.contains(key))
            v.push_back(std::string(key) + "@" + j.at("step").dump() + "=" + j.at(key).dump());
      }
      return v;
    };
    std::vector<std::string> expected = values(out("single"));
    EXPECT_EQ(values(dir), expected) << np << " ranks";
    EXPECT_GE(expected.size(), 5u);
  }
}

TEST_F(MpiTrain, KilledRankStopsTheJobAndTheJobResumesBitExactly) {
  std::string dir = out("killed");
  // Rank 1 kills itself (SIGKILL) inside step 5, after checkpoint-3; rank 0 waits for it.
  std::vector<std::string> argv = mpirun();
  argv.insert(argv.end(), {"-np", "1"});
  for (const std::string& a : zoft_train(dir)) argv.push_back(a);
  argv.insert(argv.end(), {":", "-np", "1", "-x", "ZOFT_FAULT=step:5"});
  for (const std::string& a : zoft_train(dir)) argv.push_back(a);
  Launched killed = run(argv);
  EXPECT_NE(killed.status, 0) << killed.output;
  EXPECT_LT(killed.seconds, 30);
  EXPECT_NE(killed.output.find("rank 1"), std::string::npos) << killed.output;
  EXPECT_NE(killed.output.find("signal 9"), std::string::npos) << killed.output;
  EXPECT_TRUE(fs::exists(fs::path(dir) / "checkpoint-3"));
  EXPECT_FALSE(fs::exists(fs::path(dir) / "checkpoint-6"));

  Launched resumed = run(mpirun_np(2, dir));
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming from"), std::string::npos) << resumed.output;
  EXPECT_TRUE(final_weights(dir) == reference_) << "resumed run differs from one process";
}

TEST_F(MpiTrain, HungRankTripsTheWatchdog) {
  std::string dir = out("hung");
  std::vector<std::string> argv = mpirun();
  argv.insert(argv.end(), {"-np", "2", "-x", "ZOFT_DIST_TIMEOUT=2"});
  for (const std::string& a : zoft_train(dir)) argv.push_back(a);
  argv.insert(argv.end(), {"--trainer.steps", "100000"});
  pid_t stopped = -1;
  Launched r = run(argv, [&](pid_t mpirun_pid) {
    // Once training runs (rank 0 writes metrics after start-up): a hang inside MPI_Init is
    // Open MPI's to handle.
    for (int i = 0; i < 500 && !fs::exists(fs::path(dir) / "metrics.jsonl"); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    stopped = rank_pid(mpirun_pid, 1, 10);
    if (stopped > 0) kill(stopped, SIGSTOP);  // alive but silent: no launcher notices
  });
  ASSERT_GT(stopped, 0) << "rank 1 not found";
  if (kill(stopped, 0) == 0) kill(stopped, SIGKILL);  // in case mpirun left it behind
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_LT(r.seconds, 40);
  EXPECT_NE(r.output.find("no answer from the other ranks"), std::string::npos) << r.output;
}

TEST_F(MpiTrain, RanksWithDifferentRecipesStopCleanly) {
  std::string dir = out("disagree");
  std::vector<std::string> argv = mpirun();
  argv.insert(argv.end(), {"-np", "2"});
  for (const std::string& a : zoft_train(dir)) argv.push_back(a);
  argv.insert(argv.end(), {":", "-np", "1"});
  for (const std::string& a : zoft_train(dir)) argv.push_back(a);
  argv.insert(argv.end(), {"--optim.lr", "2e-3"});  // rank 2 only
  Launched r = run(argv);
  EXPECT_EQ(r.status, 1) << r.output;  // every rank exited with 1; none was killed
  EXPECT_EQ(count_of(r.output, "zoft: error:"), 1) << r.output;  // rank 0 alone says why
  EXPECT_NE(r.output.find("disagree on the recipe: rank(s) 2 differ"), std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(fs::path(dir) / "checkpoint-3"));
}

TEST_F(MpiTrain, WorldSizeNotDividingTheBatchStopsCleanly) {
  Launched r = run(mpirun_np(4, out("four")));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_EQ(count_of(r.output, "zoft: error:"), 1) << r.output;
  EXPECT_NE(r.output.find("trainer.batch_size 6 does not divide among 4 ranks"), std::string::npos)
      << r.output;
}

TEST_F(MpiTrain, ErrorOnOneRankAtStartUpIsReportedByRankZero) {
  // The same recipe, but rank 1 cannot read its training data (as when a node lacks the file):
  // a relative data path, and rank 1 runs in a directory without it.
  fs::create_directories(root_ / "with");
  fs::create_directories(root_ / "without");
  fs::copy_file(std::string(ZOFT_SOURCE_DIR) + "/tests/fixtures/data/fine_foods_train.jsonl",
                root_ / "with" / "train.jsonl", fs::copy_options::overwrite_existing);
  std::vector<std::string> argv = mpirun();
  for (const char* wdir : {"with", "without"}) {
    if (argv.back() != "none") argv.push_back(":");
    argv.insert(argv.end(), {"-np", "1", "-wdir", (root_ / wdir).string()});
    for (const std::string& a : zoft_train(out("missing"))) argv.push_back(a);
    argv.insert(argv.end(), {"--data.train", "train.jsonl"});
  }
  Launched r = run(argv);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_EQ(count_of(r.output, "zoft: error:"), 1) << r.output;
  EXPECT_NE(r.output.find("zoft: error: rank 1 of 2: train.jsonl"), std::string::npos) << r.output;
}

TEST_F(MpiTrain, LockedOutputDirectoryStopsEveryRankCleanly) {
  // Rank 0 takes the output directory's lock; while another run holds it, the job stops at the
  // first start-up check, every rank with status 1.
  std::string dir = out("locked");
  OutputLock held(dir);
  Launched r = run(mpirun_np(2, dir));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_EQ(count_of(r.output, "zoft: error:"), 1) << r.output;
  EXPECT_NE(r.output.find("another training run uses this output directory (pid " +
                          std::to_string(getpid())),
            std::string::npos)
      << r.output;
}

}  // namespace
}  // namespace zoft::test
