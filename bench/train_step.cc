// bench_train_step: first-order (AdamW) step time of an HF model directory on random tokens:
// forward + backward + clip + AdamW update, as the trainer runs it.
//   bench_train_step MODEL_DIR [--batch 8] [--seq 256] [--dtype f32|bf16] [--threads N]
//                    [--steps 3] [--checkpointing 0|1]
// Prints one JSON object (best and mean step seconds, tokens/s, peak RSS).
// bench/train_step.py runs it side by side with a PyTorch AdamW step.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "bench_util.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "model/parameters.h"
#include "optim/optimizer.h"

using namespace zoft;

namespace {

struct Args {
  std::string dir, dtype = "f32";
  int64_t batch = 8, seq = 256;
  int threads = 0, steps = 3;
  bool checkpointing = false;
};

bool parse(int argc, char** argv, Args& a) {
  if (argc < 2) return false;
  a.dir = argv[1];
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--batch")
      a.batch = std::atoll(value.c_str());
    else if (flag == "--seq")
      a.seq = std::atoll(value.c_str());
    else if (flag == "--dtype")
      a.dtype = value;
    else if (flag == "--threads")
      a.threads = std::atoi(value.c_str());
    else if (flag == "--steps")
      a.steps = std::atoi(value.c_str());
    else if (flag == "--checkpointing")
      a.checkpointing = value == "1";
    else
      return false;
  }
  return true;
}

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  if (!parse(argc, argv, a)) {
    std::fprintf(stderr,
                 "usage: bench_train_step MODEL_DIR [--batch B --seq T --dtype f32|bf16 "
                 "--threads N --steps K --checkpointing 0|1]\n");
    return 2;
  }
  try {
    ThreadPool::set_global_threads(a.threads);
    Decoder model = Decoder::load(a.dir, parse_dtype(a.dtype));
    make_trainable(model);
    std::vector<ParameterRef> params = list_parameters(model);
    std::vector<Buffer> grads = optim::make_gradients(params);
    optim::OptimizerOptions options;
    options.lr = 1e-5;
    options.weight_decay = 0.01;
    optim::Optimizer optimizer(options, params);
    BackwardOptions backward;
    backward.checkpoint_blocks = a.checkpointing;

    TokenBatch b = bench::random_token_batch(model.config().vocab_size, a.batch, a.seq);
    std::vector<int32_t> targets = Decoder::next_token_targets(b);
    int64_t scored = 0;
    for (int32_t t : targets) scored += t >= 0;
    auto one_step = [&] {
      optim::zero_gradients(grads);
      model.loss_and_grad(b, targets.data(), 1.0f / float(scored), grads, backward);
      optim::clip_grad_norm(grads, 1.0);
      optimizer.step(params, grads);
    };
    one_step();  // warm-up
    double best = 1e30, total = 0;
    for (int i = 0; i < a.steps; ++i) {
      auto s = std::chrono::steady_clock::now();
      one_step();
      double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - s).count();
      best = std::min(best, dt);
      total += dt;
    }
    std::printf(
        "{\"model\": \"%s\", \"arch\": \"%s\", \"dtype\": \"%s\", \"batch\": %lld, \"seq\": %lld, "
        "\"threads\": %d, \"checkpointing\": %s, \"parameters\": %lld, \"best_s\": %.4f, "
        "\"mean_s\": %.4f, \"tokens_per_s\": %.1f, \"peak_rss_mb\": %.1f}\n",
        a.dir.c_str(), model.arch().name, a.dtype.c_str(), (long long)a.batch, (long long)a.seq,
        ThreadPool::global().size(), a.checkpointing ? "true" : "false",
        (long long)model.weights().parameter_count, best, total / a.steps,
        double(a.batch * a.seq) / best, peak_rss_mb());
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_train_step: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
