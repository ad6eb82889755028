// A model three times the RAM budget trains on the CPU, is killed, resumes, and ends with the
// very checkpoint bytes of a fully resident run, while its peak RSS (VmHWM, measured in the
// training process itself) stays under the budget plus the stated overhead.
//
// Each run is a fresh process (this test binary re-executed into BudgetChild), because VmHWM
// is per process and a forked copy would inherit the parent's memory.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "model/decoder.h"
#include "model/parameters.h"
#include "runtime/llama_maker.h"
#include "runtime/plan.h"
#include "train/trainer.h"

// gcc defines __SANITIZE_ADDRESS__ under -fsanitize=address; clang answers __has_feature.
#if defined(__has_feature)
#define ZOFT_CLANG_ASAN __has_feature(address_sanitizer)
#else
#define ZOFT_CLANG_ASAN 0
#endif

namespace zoft::test {
namespace {

namespace fs = std::filesystem;

uint64_t status_bytes(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) return std::stoull(line.substr(std::strlen(key))) * 1024;
  return 0;
}

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The child: trains with the recipe and overrides given in the environment and reports its
// peak RSS. Disabled, so that only the parent below runs it.
TEST(BudgetChild, DISABLED_Train) {
  const char* args = std::getenv("ZOFT_CHILD_ARGS");
  const char* report = std::getenv("ZOFT_CHILD_REPORT");
  if (!args || !report) GTEST_SKIP() << "run by BudgetRun only";
  const uint64_t baseline = status_bytes("VmHWM:");
  std::vector<std::string> words;
  std::istringstream in(args);
  for (std::string w; std::getline(in, w);) words.push_back(w);
  Recipe recipe = load_recipe(words.at(0), parse_overrides({words.begin() + 1, words.end()}));
  TrainSummary s = train(recipe);
  nlohmann::json j = {{"peak_rss", status_bytes("VmHWM:")},
                      {"baseline_rss", baseline},
                      {"steps", s.steps},
                      {"resumed_from", s.resumed_from}};
  std::ofstream(report) << j.dump();
}

class BudgetRun : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("zoft_budget_" + std::to_string(getpid()));
    fs::create_directories(root_);
    // 16 layers of 5 MB (hidden 128, MLP 3072) and a 16 MB tied embedding: ~96 MB of f32.
    LlamaShape shape;
    shape.hidden = 128, shape.intermediate = 3072, shape.layers = 16, shape.heads = 4;
    shape.kv_heads = 2, shape.head_dim = 32;
    make_llama((root_ / "model").string(), shape, 3);
    std::string src = ZOFT_SOURCE_DIR;
    std::ofstream(root_ / "recipe.yaml")
        << "model:\n  path: " << (root_ / "model").string() << "\n"
        << "data:\n  train: " << src << "/tests/fixtures/data/fine_foods_train.jsonl\n"
        << "  eval: " << src << "/tests/fixtures/data/fine_foods_test.jsonl.xz\n"
        << "  train_samples: 16\n  eval_samples: 4\n  max_seq_length: 48\n"
        << "task:\n  file: " << src << "/recipes/tasks/fine_foods.yaml\n"
        << "optim:\n  lr: 1.0e-3\n  eps: 1.0e-3\n"
        << "trainer:\n  steps: 4\n  batch_size: 2\n  save_interval: 2\n  seed: 5\n"
        << "  eval_before: false\n"
        << "placement:\n  threads: 2\n"
        << "logging:\n  tensorboard: false\n";
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }

  struct Result {
    int status = 0;  // exit code, or -signal
    nlohmann::json report;
    std::string log;
  };

  static Result run(const std::string& name, std::vector<std::string> overrides,
                    const std::string& fault = "") {
    fs::path report = root_ / (name + ".json"), log = root_ / (name + ".log");
    std::string args =
        (root_ / "recipe.yaml").string() + "\n--trainer.output_dir\n" + (root_ / name).string();
    for (const std::string& o : overrides) args += "\n" + o;
    fs::remove(report);
    pid_t pid = fork();
    if (pid == 0) {
      setenv("ZOFT_CHILD_ARGS", args.c_str(), 1);
      setenv("ZOFT_CHILD_REPORT", report.c_str(), 1);
      if (!fault.empty()) setenv("ZOFT_FAULT", fault.c_str(), 1);
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      execl("/proc/self/exe", "test_runtime", "--gtest_filter=BudgetChild.DISABLED_Train",
            "--gtest_also_run_disabled_tests", (char*)nullptr);
      _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    Result r;
    r.status = WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
    r.log = slurp(log);
    if (fs::exists(report)) r.report = nlohmann::json::parse(slurp(report));
    return r;
  }

  static fs::path root_;
};

fs::path BudgetRun::root_;

TEST_F(BudgetRun, ThirdOfTheModelInRamTrainsResumesAndMatchesResident) {
  const uint64_t model_bytes = fs::file_size(root_ / "model" / "model.safetensors");
  const uint64_t budget = model_bytes / 3;
  const std::vector<std::string> offload = {
      "--placement.max_memory",     "cpu=" + std::to_string(budget), "--placement.offload_dir",
      (root_ / "offload").string(), "--placement.prefetch",          "1"};

  Result resident = run("resident", {});
  ASSERT_EQ(resident.status, 0) << resident.log;
  // Killed during step 3 (after the checkpoint of step 2), then resumed to the end.
  Result killed = run("offloaded", offload, "step:3");
  ASSERT_EQ(killed.status, -SIGKILL) << killed.log;
  Result resumed = run("offloaded", offload);
  ASSERT_EQ(resumed.status, 0) << resumed.log;
  EXPECT_EQ(resumed.report.at("resumed_from"), 2);
  EXPECT_NE(resumed.log.find("streamed from disk"), std::string::npos) << resumed.log;

  // The offloaded run's checkpoints are normal HF directories with the resident run's bytes.
  for (const char* ckpt : {"checkpoint-2", "checkpoint-4"})
    for (const char* file : {"model.safetensors", "config.json"}) {
      std::string a = slurp(root_ / "resident" / ckpt / file);
      ASSERT_GT(a.size(), 100u) << ckpt << "/" << file;
      EXPECT_TRUE(a == slurp(root_ / "offloaded" / ckpt / file))
          << ckpt << "/" << file << " differs";
    }
  // The final evaluation (streamed too) scores as the resident one does.
  auto metric = [&](const char* run) {
    return nlohmann::json::parse(slurp(root_ / run / "checkpoint-4" / "trainer_state.json"))
        .at("last_metric")
        .get<double>();
  };
  EXPECT_EQ(metric("resident"), metric("offloaded"));
  EXPECT_TRUE(slurp(root_ / "resident" / "checkpoint-4" / "model.safetensors") !=
              slurp(root_ / "model" / "model.safetensors"))
      << "training did not change the weights";

  // Peak RSS <= budget + stated overhead: the process before training (code, libraries, test
  // runner), the largest resident tensor once more (copied out of the checkpoint's mmap when
  // the model attaches), the largest block once more (the ZO step's copy that undoes a
  // forward's perturbation, train/zo_step.h) and 16 MiB for the tokenizer, the data, this
  // batch's activations and BLAS buffers. Measured here: ~35 MiB over the budget in all.
  Decoder model = Decoder::load((root_ / "model").string());
  const uint64_t largest = model.weights().embed_tokens.nbytes();
  std::map<int64_t, uint64_t> block_bytes;
  for (const ParameterRef& p : list_parameters(model)) block_bytes[p.block] += p.tensor.nbytes();
  uint64_t largest_block = 0;
  for (const auto& [block, bytes] : block_bytes) largest_block = std::max(largest_block, bytes);
  const uint64_t baseline = resumed.report.at("baseline_rss");
  const uint64_t peak = resumed.report.at("peak_rss");
  const uint64_t allowed = budget + baseline + largest + largest_block + (uint64_t(16) << 20);
  std::printf(
      "model %s, budget %s; peak RSS resident %s, offloaded %s (baseline %s, largest "
      "tensor %s, allowed %s)\n",
      runtime::format_bytes(model_bytes).c_str(), runtime::format_bytes(budget).c_str(),
      runtime::format_bytes(resident.report.at("peak_rss")).c_str(),
      runtime::format_bytes(peak).c_str(), runtime::format_bytes(baseline).c_str(),
      runtime::format_bytes(largest).c_str(), runtime::format_bytes(allowed).c_str());
  // The plan and the transfer totals as the offloaded run printed them.
  for (auto [from, to] : {std::pair{"zoft: placement plan", "(removed at exit)"},
                          std::pair{"zoft: offload:", "\n"}}) {
    std::size_t at = resumed.log.find(from), end = resumed.log.find(to, at);
    if (at != std::string::npos && end != std::string::npos)
      std::printf("%s\n", resumed.log.substr(at, end - at + std::strlen(to)).c_str());
  }
  // AddressSanitizer's shadow memory and quarantine inflate RSS by a factor the budget cannot
  // know: the memory bound is asserted in the release build; the sanitizer build still checks
  // that the offloaded run trains, resumes and matches the resident one (above).
#if defined(__SANITIZE_ADDRESS__) || ZOFT_CLANG_ASAN
  GTEST_SKIP() << "peak-RSS bound not asserted under AddressSanitizer";
#endif
  EXPECT_LE(peak, allowed);
  EXPECT_LT(peak + model_bytes / 2, uint64_t(resident.report.at("peak_rss")))
      << "the resident run should need far more memory";
}

}  // namespace
}  // namespace zoft::test
