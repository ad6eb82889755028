// bench_single_token_step: MeZO-SGD step time on a classification batch whose candidates are
// one token each, with the single-token fast path (one forward row per example, candidate
// logits only) and without it (one row per candidate, per-token losses), alternating in one run.
//   bench_single_token_step MODEL_DIR [--batch 16] [--context 63] [--candidates 2]
//                           [--dtype f32|bf16] [--threads N] [--steps 3] [--order zo2|plain]
// Contexts are random tokens of length `context` down to context / 2 (left padding varies, as
// in a real batch); prints one JSON object with both step times and their ratio.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "core/error.h"
#include "core/thread_pool.h"
#include "data/batch.h"
#include "dist/communicator.h"
#include "train/objective.h"
#include "train/single_token.h"
#include "train/zo_step.h"

using namespace zoft;

namespace {

data::Batch candidate_batch(int64_t vocab, int64_t batch, int64_t context, int candidates) {
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> token(0, int32_t(vocab - 1));
  std::vector<data::EncodedExample> examples(static_cast<size_t>(batch));
  std::vector<size_t> indices;
  for (int64_t i = 0; i < batch; ++i) {
    data::EncodedExample& e = examples[size_t(i)];
    const int64_t length = context - (i * context / 2) / std::max<int64_t>(1, batch);
    for (int64_t t = 0; t < length; ++t) e.context_ids.push_back(token(rng));
    for (int c = 0; c < candidates; ++c) e.candidate_ids.push_back({token(rng)});
    e.label = int32_t(i % candidates);
    indices.push_back(size_t(i));
  }
  data::BatchOptions o;
  o.mode = data::LossMode::kClassification;
  return data::make_batch(examples, indices, o);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: bench_single_token_step MODEL_DIR [--batch B --context T --candidates C "
                 "--dtype f32|bf16 --threads N --steps K --order zo2|plain]\n");
    return 2;
  }
  std::string dir = argv[1], dtype = "f32", order = "zo2";
  int64_t batch = 16, context = 63;
  int threads = 0, steps = 3, candidates = 2;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--batch")
      batch = std::atoll(value.c_str());
    else if (flag == "--context")
      context = std::atoll(value.c_str());
    else if (flag == "--candidates")
      candidates = std::atoi(value.c_str());
    else if (flag == "--dtype")
      dtype = value;
    else if (flag == "--threads")
      threads = std::atoi(value.c_str());
    else if (flag == "--steps")
      steps = std::atoi(value.c_str());
    else if (flag == "--order")
      order = value;
    else {
      std::fprintf(stderr, "bench_single_token_step: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  try {
    if (batch < 1 || context < 2 || candidates < 1 || steps < 1)
      fail("--batch, --context, --candidates and --steps must be positive (context >= 2)");
    ThreadPool::set_global_threads(threads);
    Decoder model = Decoder::load(dir, parse_dtype(dtype));
    zo::MezoOptions options;
    options.lr = 1e-6;
    options.eps = 1e-3;
    options.seed = 1;
    zo::MezoSgd optimizer(options);
    ZoStepper stepper(model, optimizer, order == "plain" ? ZoOrder::Plain : ZoOrder::Zo2);

    data::Batch b = candidate_batch(model.config().vocab_size, batch, context, candidates);
    TokenBatch rows{b.rows, b.seq, b.ids, b.mask};
    LossOfTokens objective = [&b](const std::vector<float>& loss) {
      return batch_loss(b, loss, data::LossMode::kClassification);
    };
    std::optional<StepBatch> fast =
        single_token_step_batch(b, data::LossMode::kClassification, dist::world("none"));
    if (!fast) fail("the benchmark batch is not a single-token batch");
    auto one_step = [&](bool use_fast) {
      auto s = std::chrono::steady_clock::now();
      if (use_fast)
        stepper.forward_passes(fast->tokens, fast->head);
      else
        stepper.forward_passes(rows, b.targets, objective);
      stepper.end_step();
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - s).count();
    };
    one_step(false);  // warm-up
    one_step(true);
    double best[2] = {1e30, 1e30}, total[2] = {0, 0};
    for (int i = 0; i < steps; ++i)
      for (int fast_path = 0; fast_path < 2; ++fast_path) {  // alternate: same machine state
        double dt = one_step(fast_path == 1);
        best[fast_path] = std::min(best[fast_path], dt);
        total[fast_path] += dt;
      }
    stepper.finish();
    std::printf(
        "{\"model\": \"%s\", \"arch\": \"%s\", \"dtype\": \"%s\", \"order\": \"%s\", "
        "\"batch\": %lld, \"context\": %lld, \"candidates\": %d, \"threads\": %d, "
        "\"per_candidate_rows\": %lld, \"fast_rows\": %lld, "
        "\"per_candidate_best_s\": %.4f, \"per_candidate_mean_s\": %.4f, "
        "\"fast_best_s\": %.4f, \"fast_mean_s\": %.4f, \"speedup\": %.3f}\n",
        dir.c_str(), model.arch().name, dtype.c_str(), order.c_str(), (long long)batch,
        (long long)context, candidates, ThreadPool::global().size(), (long long)b.rows,
        (long long)fast->tokens.batch, best[0], total[0] / steps, best[1], total[1] / steps,
        best[0] / best[1]);
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_single_token_step: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
