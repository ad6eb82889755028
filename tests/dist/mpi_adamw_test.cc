// Data-parallel AdamW (optim.method adamw) over MPI. The gradients are summed over the ranks in
// rank order, so 2 ranks follow one process up to the order of the float sums (not bit for bit:
// each rank sums its own rows first), and 2 ranks give the same bits every time:
// - `mpirun -np 2 zoft train` on a text corpus against one process, and against itself;
// - FirstOrderMethod on 2 MPI ranks (this binary under mpirun), each with its rows of the golden
//   batches of tools/make_adamw_run_fixture.py: every rank has the same losses and weights, bit
//   for bit, and they are torch.optim.AdamW's within 1e-4.
// Skipped (with a message) where this build has no MPI or no mpirun.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "dist/communicator.h"
#include "io/safetensors.h"
#include "runtime/llama_maker.h"
#include "train/adamw_run_util.h"
#include "train/first_order_method.h"

namespace zoft::test::dist_adamw {  // own namespace: the unity build joins this file with
                                    // mpi_train_test.cc
namespace {

namespace fs = std::filesystem;

#ifdef ZOFT_MPIRUN
const char* kMpirun = ZOFT_MPIRUN;
#else
const char* kMpirun = "";
#endif

constexpr int kSteps = 4;
// What CI containers need: root; leak checking (ASan builds) would flag Open MPI's allocations.
const std::string kMpiEnv =
    "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ASAN_OPTIONS=detect_leaks=0 ";

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class MpiAdamw : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("zoft_dist_adamw_" + std::to_string(getpid()));
    fs::create_directories(root_);
    make_llama((root_ / "model").string(), LlamaShape{});
    std::ofstream train(root_ / "train.txt");
    for (int i = 0; i < 12; ++i)
      train << "Sir Walter Elliot, of Kellynch Hall, in Somersetshire, was a man who, for his own "
               "amusement, never took up any book but the Baronetage; there he found occupation "
               "for an idle hour, and consolation in a distressed one. Line "
            << i << ".\n";
    // batch 4: 2 rows per rank with 2 ranks; warm-up, weight decay, clipping.
    std::ofstream(root_ / "recipe.yaml")
        << "model:\n  path: " << (root_ / "model").string() << "\n"
        << "data:\n  train: " << (root_ / "train.txt").string() << "\n  max_seq_length: 24\n"
        << "optim:\n  method: adamw\n  lr: 1.0e-3\n  weight_decay: 0.1\n  schedule: linear\n"
        << "  warmup_steps: 1\n  max_grad_norm: 1.0\n"
        << "trainer:\n  steps: " << kSteps << "\n  batch_size: 4\n  seed: 7\n  save_interval: 0\n"
        << "  eval_before: false\n"
        << "placement:\n  threads: 1\nlogging:\n  log_interval: 1\n  tensorboard: false\n";
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }

  void SetUp() override {
    if (!dist::mpi_available())
      GTEST_SKIP() << "this build has no MPI (apt-get install libopenmpi-dev openmpi-bin)";
    if (std::string(kMpirun).empty() || access(kMpirun, X_OK) != 0)
      GTEST_SKIP() << "no mpirun found (apt-get install openmpi-bin)";
  }

  // `zoft train` on `np` ranks (np 0: no mpirun at all) into root/name; returns the exit status.
  static int train(int np, const std::string& name) {
    std::string out = (root_ / name).string();
    std::string cmd = std::string(ZOFT_BINARY) + " train " + (root_ / "recipe.yaml").string() +
                      " --trainer.output_dir " + out;
    if (np > 0)
      // 2 cores for 2 ranks, no ptrace (CMA).
      cmd = kMpiEnv + std::string(kMpirun) +
            " --oversubscribe --bind-to none --mca btl_vader_single_copy_mechanism none -np " +
            std::to_string(np) + " " + cmd;
    int status = std::system((cmd + " > " + out + ".log 2>&1").c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  static std::string log_of(const std::string& name) { return slurp(root_ / (name + ".log")); }
  static fs::path weights_of(const std::string& name) {
    return root_ / name / ("checkpoint-" + std::to_string(kSteps)) / "model.safetensors";
  }

  static std::vector<double> losses_of(const std::string& name) {
    std::vector<double> out;
    std::ifstream in(root_ / name / "metrics.jsonl");
    for (std::string line; std::getline(in, line);) {
      nlohmann::json row = nlohmann::json::parse(line);
      if (row.contains("train/loss")) out.push_back(row["train/loss"].get<double>());
    }
    return out;
  }

  static fs::path root_;
};

fs::path MpiAdamw::root_;

// max over tensors of max |a - b| / max |b|.
double worst_weight_error(const fs::path& a_path, const fs::path& b_path, std::string* worst_name) {
  SafetensorsFile a = SafetensorsFile::open(a_path.string());
  SafetensorsFile b = SafetensorsFile::open(b_path.string());
  EXPECT_EQ(a.tensors().size(), b.tensors().size());
  double worst = 0;
  for (const SafetensorsInfo& info : b.tensors()) {
    Tensor tb = b.view(info), ta = a.view(info.name);
    EXPECT_EQ(ta.numel(), tb.numel()) << info.name;
    if (ta.numel() != tb.numel() || ta.dtype != DType::F32 || tb.dtype != DType::F32) {
      ADD_FAILURE() << info.name << ": not f32 tensors of the same size";
      continue;
    }
    double diff = 0, scale = 0;
    for (int64_t i = 0; i < tb.numel(); ++i) {
      diff = std::max(diff, std::fabs(double(ta.f32()[i]) - tb.f32()[i]));
      scale = std::max(scale, std::fabs(double(tb.f32()[i])));
    }
    if (diff / scale >= worst) worst = diff / scale, *worst_name = info.name;
  }
  return worst;
}

TEST_F(MpiAdamw, TwoRanksFollowOneProcessAndRepeatBitForBit) {
  ASSERT_EQ(train(0, "single"), 0) << log_of("single");
  ASSERT_EQ(train(2, "np2"), 0) << log_of("np2");
  ASSERT_EQ(train(2, "np2-again"), 0) << log_of("np2-again");
  EXPECT_NE(log_of("np2").find("2 ranks (mpi)"), std::string::npos) << log_of("np2");

  std::vector<double> one = losses_of("single"), two = losses_of("np2");
  ASSERT_EQ(one.size(), size_t(kSteps));
  ASSERT_EQ(two.size(), one.size());
  double loss_error = 0;
  for (size_t i = 0; i < one.size(); ++i)
    loss_error = std::max(loss_error, std::fabs(two[i] - one[i]) / one[i]);
  std::string worst_name;
  double weight_error = worst_weight_error(weights_of("np2"), weights_of("single"), &worst_name);
  std::cout << "[ mpi adamw ] 2 ranks vs 1 process: losses " << loss_error << ", weights "
            << weight_error << " (" << worst_name << "); loss " << one.front() << " -> "
            << one.back() << "\n";
  EXPECT_LE(loss_error, 1e-5);
  EXPECT_LE(weight_error, 1e-5) << worst_name;
  EXPECT_LT(one.back(), one.front()) << "the run trains";

  EXPECT_TRUE(slurp(weights_of("np2")) == slurp(weights_of("np2-again")))
      << "two 2-rank runs: final weights differ";
  EXPECT_EQ(losses_of("np2-again"), two);
}

// The golden models the rank test trains: untied, and tied with Gemma's norms.
const char* const kRankModels[] = {"llama", "gemma3"};
const char* const kRankOutEnv = "ZOFT_TEST_RANK_OUT";

// Run by RanksAgreeAndMatchTorch on every rank (disabled otherwise): this rank's half of each
// golden batch through FirstOrderMethod; writes what it saw to $ZOFT_TEST_RANK_OUT/rank<r>.json.
TEST(MpiAdamwRank, DISABLED_TrainThisRanksRows) {
  const char* out = std::getenv(kRankOutEnv);
  if (!out) GTEST_SKIP() << "run under mpirun by MpiAdamw.RanksAgreeAndMatchTorch";
  ThreadPool::set_global_threads(1);
  dist::Communicator& comm = dist::world("mpi");
  ASSERT_EQ(comm.size(), 2);
  nlohmann::json report;
  for (const char* name : kRankModels) {
    adamw_run::Reference ref = adamw_run::load_reference(name);
    Decoder model = Decoder::load(golden_dir(name), DType::F32);
    FirstOrderMethod method(adamw_run::recipe_of(ref.settings, 1), model, comm);
    nlohmann::json& r = report[name];
    for (const std::string& case_name : ref.cases) {
      StepReport step = method.step(adamw_run::step_batch(name, case_name, comm.rank(), 2));
      r["losses"].push_back(step.loss);  // written with round-trip precision
      r["grad_norms"].push_back(step.metrics.at("train/grad_norm"));
    }
    dist::Fingerprint weights;
    for (const ParameterRef& p : method.parameters()) weights.add(p.tensor.data, p.tensor.nbytes());
    r["weights_fingerprint"] = weights.value();
    adamw_run::WeightError e = adamw_run::weight_error(method.parameters(), name);
    r["weight_error"] = e.worst;
    r["worst_tensor"] = e.name;
  }
  std::ofstream(fs::path(out) / ("rank" + std::to_string(comm.rank()) + ".json")) << report.dump();
}

TEST_F(MpiAdamw, RanksAgreeAndMatchTorch) {
  const fs::path dir = root_ / "ranks";
  fs::create_directories(dir);
  const std::string cmd =
      kMpiEnv + std::string(kMpirun) +
      " --oversubscribe --bind-to none --mca btl_vader_single_copy_mechanism none -np 2 -x " +
      kRankOutEnv + "=" + dir.string() + " " + fs::read_symlink("/proc/self/exe").string() +
      " --gtest_also_run_disabled_tests --gtest_filter=MpiAdamwRank.DISABLED_TrainThisRanksRows "
      "> " +
      dir.string() + ".log 2>&1";
  int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << slurp(dir.string() + ".log");
  nlohmann::json rank0 = nlohmann::json::parse(slurp(dir / "rank0.json"));
  nlohmann::json rank1 = nlohmann::json::parse(slurp(dir / "rank1.json"));
  for (const char* name : kRankModels) {
    SCOPED_TRACE(name);
    const nlohmann::json &a = rank0.at(name), &b = rank1.at(name);
    // Every rank reports the same losses and gradient norms and holds the same weights.
    EXPECT_EQ(a.at("losses"), b.at("losses"));
    EXPECT_EQ(a.at("grad_norms"), b.at("grad_norms"));
    EXPECT_EQ(a.at("weights_fingerprint"), b.at("weights_fingerprint"));
    // And they are PyTorch's (one process, all rows).
    adamw_run::Reference ref = adamw_run::load_reference(name);
    std::vector<double> losses = a.at("losses").get<std::vector<double>>();
    ASSERT_EQ(losses.size(), ref.losses.size());
    double loss_error = 0;
    for (size_t i = 0; i < losses.size(); ++i)
      loss_error = std::max(loss_error, std::fabs(losses[i] - ref.losses[i]) / ref.losses[i]);
    const double weight_error = a.at("weight_error").get<double>();
    std::cout << "[ mpi adamw ] " << name << ", 2 ranks vs torch: losses " << loss_error
              << ", weights " << weight_error << " (" << a.at("worst_tensor").get<std::string>()
              << ")\n";
    EXPECT_LE(loss_error, 1e-4);
    EXPECT_LE(weight_error, 1e-4);
  }
}

}  // namespace
}  // namespace zoft::test::dist_adamw
