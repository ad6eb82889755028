// bench_dist: ZO data parallelism on one machine. Runs `mpirun -np N zoft train` for each N on
// a random Llama-shaped model it writes (the real Llama-2 tokenizer, fine-food reviews) and
// reports steps/s, the speed-up over one rank, and the time per step that rank 0 spends in
// collectives (the loss all-gather, waiting for slower ranks included). Threads per rank: the
// machine's cores shared evenly (zoft's default), so every N uses the same cores.
//   bench_dist [--ranks 1,2,4] [--steps 20] [--batch 16] [--hidden 256] [--layers 4]
//              [--json bench_dist.json]
// Also checks that every N ends with the same weights, bit for bit, and times the bare
// all-gather of one step's per-token losses (mpirun -np N bench_dist --allgather BYTES), to
// tell transfer time from waiting.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "dist/communicator.h"
#include "io/safetensors.h"

namespace fs = std::filesystem;
using namespace zoft;

namespace {

// A random Llama (tied embeddings) with the Llama-2 vocabulary, written to dir.
void write_model(const fs::path& dir, int64_t H, int64_t L) {
  const int64_t V = 32000, I = H * 11 / 4, D = 64, heads = H / D,
                kv = std::max<int64_t>(1, heads / 2);
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << nlohmann::json{
      {"model_type", "llama"},
      {"vocab_size", V},
      {"hidden_size", H},
      {"intermediate_size", I},
      {"num_hidden_layers", L},
      {"num_attention_heads", heads},
      {"num_key_value_heads", kv},
      {"head_dim", D},
      {"max_position_embeddings", 512},
      {"rms_norm_eps", 1e-5},
      {"tie_word_embeddings", true},
      {"bos_token_id", 1},
      {"eos_token_id", 2},
      {"architectures",
       {"LlamaForCausalLM"}}}.dump(2);
  const std::string tok = std::string(ZOFT_SOURCE_DIR) + "/tests/fixtures/tokenizers/llama2/";
  fs::copy_file(tok + "tokenizer.json.xz", dir / "tokenizer.json.xz",
                fs::copy_options::overwrite_existing);
  fs::copy_file(tok + "tokenizer_config.json", dir / "tokenizer_config.json",
                fs::copy_options::overwrite_existing);
  std::mt19937_64 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<std::vector<float>> storage;
  std::vector<NamedTensor> tensors;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, float std, float mean) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    storage.emplace_back(size_t(n));
    for (float& x : storage.back()) x = mean + std * normal(rng);
    tensors.push_back({name, Tensor::with_shape(storage.back().data(), DType::F32, shape.data(),
                                                int(shape.size()))});
  };
  add("model.embed_tokens.weight", {V, H}, 0.02f, 0.0f);
  for (int64_t l = 0; l < L; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {H}, 0.0f, 1.0f);
    add(p + "self_attn.q_proj.weight", {heads * D, H}, 0.02f, 0.0f);
    add(p + "self_attn.k_proj.weight", {kv * D, H}, 0.02f, 0.0f);
    add(p + "self_attn.v_proj.weight", {kv * D, H}, 0.02f, 0.0f);
    add(p + "self_attn.o_proj.weight", {H, heads * D}, 0.02f, 0.0f);
    add(p + "post_attention_layernorm.weight", {H}, 0.0f, 1.0f);
    add(p + "mlp.gate_proj.weight", {I, H}, 0.02f, 0.0f);
    add(p + "mlp.up_proj.weight", {I, H}, 0.02f, 0.0f);
    add(p + "mlp.down_proj.weight", {H, I}, 0.02f, 0.0f);
  }
  add("model.norm.weight", {H}, 0.0f, 1.0f);
  write_safetensors((dir / "model.safetensors").string(), tensors);
}

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

int run(const std::vector<std::string>& argv, const fs::path& log) {
  pid_t pid = fork();
  if (pid == 0) {
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    if (!freopen(log.c_str(), "w", stdout) || !freopen(log.c_str(), "a", stderr)) _exit(126);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Under mpirun: microseconds per all-gather of `bytes` in all (split evenly over the ranks),
// printed by rank 0 as the last line.
int time_all_gather(int64_t bytes) {
  dist::Communicator& comm = dist::world("mpi");
  std::vector<size_t> counts(size_t(comm.size()));
  for (int r = 0; r < comm.size(); ++r) counts[size_t(r)] = size_t(bytes / comm.size());
  std::vector<uint8_t> mine(counts[0], uint8_t(comm.rank())), all(counts[0] * counts.size());
  const int iters = 2000;
  for (int i = 0; i < 50; ++i) comm.all_gather(mine.data(), all.data(), counts);
  comm.barrier();
  double before = comm.comm_seconds();
  for (int i = 0; i < iters; ++i) comm.all_gather(mine.data(), all.data(), counts);
  if (comm.is_root()) std::printf("%.3f\n", (comm.comm_seconds() - before) / iters * 1e6);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--allgather")
    return time_all_gather(std::atoll(argv[2]));
  std::vector<int> ranks = {1, 2, 4};
  int64_t steps = 20, batch = 16, hidden = 256, layers = 4;
  std::string json_path = "bench_dist.json";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--ranks") {
      ranks.clear();
      std::stringstream s(value);
      for (std::string n; std::getline(s, n, ',');) ranks.push_back(std::atoi(n.c_str()));
    } else if (flag == "--steps") {
      steps = std::atoll(value.c_str());
    } else if (flag == "--batch") {
      batch = std::atoll(value.c_str());
    } else if (flag == "--hidden") {
      hidden = std::atoll(value.c_str());
    } else if (flag == "--layers") {
      layers = std::atoll(value.c_str());
    } else if (flag == "--json") {
      json_path = value;
    } else {
      std::fprintf(stderr, "bench_dist: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  const fs::path root = fs::temp_directory_path() / ("zoft_bench_dist_" + std::to_string(getpid()));
  write_model(root / "model", hidden, layers);
  const std::string src = ZOFT_SOURCE_DIR;
  std::ofstream(root / "recipe.yaml")
      << "model:\n  path: " << (root / "model").string() << "\n"
      << "data:\n  train: " << src << "/tests/fixtures/data/fine_foods_train.jsonl\n"
      << "  train_samples: " << 4 * batch << "\n  max_seq_length: 128\n"
      << "task:\n  file: " << src << "/recipes/tasks/fine_foods.yaml\n"
      << "optim:\n  lr: 1.0e-4\n  eps: 1.0e-3\n"
      << "trainer:\n  steps: " << steps << "\n  batch_size: " << batch
      << "\n  eval_before: false\n  seed: 3\n"
      << "logging:\n  log_interval: " << steps << "\n  tensorboard: false\n";

  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  std::printf("bench_dist: llama H=%lld L=%lld V=32000, batch %lld, %lld steps, %u cores, %s\n",
              (long long)hidden, (long long)layers, (long long)batch, (long long)steps, cores,
              ZOFT_MPIRUN);
  // One step's per-token losses: rows (2 candidates per example) x seq (<= 128) floats.
  const int64_t gather_bytes = batch * 2 * 128 * 4;
  std::printf("%6s %12s %9s %9s %15s %11s %17s\n", "ranks", "threads/rank", "steps/s", "speed-up",
              "comm ms/step", "comm share", "all-gather us");
  std::fflush(stdout);  // before fork: the children must not inherit unwritten output
  nlohmann::json results = nlohmann::json::array();
  double base = 0;
  std::string weights0;
  bool identical = true;
  for (int n : ranks) {
    const fs::path out = root / ("np" + std::to_string(n));
    std::vector<std::string> cmd = {ZOFT_MPIRUN,
                                    "--oversubscribe",
                                    "--bind-to",
                                    "none",
                                    "-np",
                                    std::to_string(n),
                                    ZOFT_BINARY,
                                    "train",
                                    (root / "recipe.yaml").string(),
                                    "--trainer.output_dir",
                                    out.string()};
    int rc = run(cmd, root / ("np" + std::to_string(n) + ".log"));
    if (rc != 0) {
      std::fprintf(stderr, "bench_dist: %d ranks failed (status %d):\n%s\n", n, rc,
                   slurp(root / ("np" + std::to_string(n) + ".log")).c_str());
      return 1;
    }
    std::ifstream metrics(out / "metrics.jsonl");
    nlohmann::json last;
    for (std::string line; std::getline(metrics, line);) last = nlohmann::json::parse(line);
    const double rate = last.value("train/steps_per_s", 0.0),
                 comm = last.value("dist/comm_s_per_step", 0.0);
    if (base == 0) base = rate;
    const int threads = std::max(1, int(cores) / n);
    double gather_us = 0;
    if (n > 1) {
      const fs::path log = root / ("allgather" + std::to_string(n) + ".log");
      std::string self = fs::read_symlink("/proc/self/exe").string();
      if (run({ZOFT_MPIRUN, "--oversubscribe", "--bind-to", "none", "-np", std::to_string(n), self,
               "--allgather", std::to_string(gather_bytes)},
              log) == 0) {
        std::istringstream lines(slurp(log));
        for (std::string line; std::getline(lines, line);)
          if (!line.empty()) gather_us = std::atof(line.c_str());
      }
    }
    std::printf("%6d %12d %9.2f %8.2fx %15.3f %10.1f%% %17.1f\n", n, threads, rate, rate / base,
                comm * 1e3, 100.0 * comm * rate, gather_us);
    std::fflush(stdout);
    results.push_back({{"ranks", n},
                       {"threads_per_rank", threads},
                       {"steps_per_s", rate},
                       {"speedup", rate / base},
                       {"comm_s_per_step", comm},
                       {"all_gather_us", gather_us},
                       {"all_gather_bytes", gather_bytes}});
    std::string w = slurp(out / ("checkpoint-" + std::to_string(steps)) / "model.safetensors");
    if (weights0.empty()) weights0 = w;
    identical = identical && w == weights0;
  }
  std::printf("final weights identical for every rank count: %s\n", identical ? "yes" : "NO");
  std::ofstream(json_path) << nlohmann::json{{"bench", "dist"},
                                             {"hidden", hidden},
                                             {"layers", layers},
                                             {"batch", batch},
                                             {"steps", steps},
                                             {"cores", cores},
                                             {"weights_identical", identical},
                                             {"results", results}}
                                  .dump(2)
                           << "\n";
  fs::remove_all(root);
  return identical ? 0 : 1;
}
