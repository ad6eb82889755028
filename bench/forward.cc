// bench_forward: tokens/s of a batched forward pass of an HF model directory.
//   bench_forward MODEL_DIR [--batch 8] [--seq 256] [--dtype f32|bf16] [--threads N]
//                 [--iters 3] [--mode logits|loss|grad|grad-checkpoint] [--device cpu|cuda]
//                 [--random-init 1]
// Prints one JSON object. bench/forward.py runs it side by side with PyTorch.
// --mode grad: Decoder::loss_and_grad (forward + backward, CPU); grad-checkpoint: the same with
// per-block activation checkpointing. peak_rss_gib is the process's peak resident memory.
// --random-init 1: MODEL_DIR is a config.json (or a directory holding one) and the weights are
// drawn in memory (Decoder::random_init): shapes such as OPT-6.7B without a checkpoint
// (bench/configs/). --device cuda: the same forward on the GPU (Decoder::to_device).
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "backend/cpu/isa.h"
#include "bench_util.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "model/decoder.h"

using namespace zoft;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: bench_forward MODEL_DIR [--batch B --seq T --dtype f32|bf16 "
                 "--threads N --iters K --mode logits|loss|grad|grad-checkpoint]\n");
    return 2;
  }
  std::string dir = argv[1], dtype = "f32", mode = "logits", device = "cpu";
  bool random_init = false;
  int64_t batch = 8, seq = 256;
  int threads = 0, iters = 3;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--batch")
      batch = std::atoll(value.c_str());
    else if (flag == "--seq")
      seq = std::atoll(value.c_str());
    else if (flag == "--dtype")
      dtype = value;
    else if (flag == "--threads")
      threads = std::atoi(value.c_str());
    else if (flag == "--iters")
      iters = std::atoi(value.c_str());
    else if (flag == "--mode")
      mode = value;
    else if (flag == "--device")
      device = value;
    else if (flag == "--random-init")
      random_init = value == "1" || value == "true";
    else {
      std::fprintf(stderr, "bench_forward: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  try {
    ThreadPool::set_global_threads(threads);
    auto t0 = std::chrono::steady_clock::now();
    Decoder model = random_init ? Decoder::random_init(dir, parse_dtype(dtype))
                                : Decoder::load(dir, parse_dtype(dtype));
    const Device placed = parse_device(device);
    if (placed != Device::CPU) model = model.to_device(placed);
    double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const ModelConfig& c = model.config();

    TokenBatch b = bench::random_token_batch(c.vocab_size, batch, seq);
    std::vector<float> out(mode == "logits" ? size_t(batch * seq * c.vocab_size)
                                            : size_t(batch * seq));
    std::vector<int32_t> targets = Decoder::next_token_targets(b);
    const bool grad = mode == "grad" || mode == "grad-checkpoint";
    if (grad && device != "cpu") fail("--mode {} runs on the CPU only", mode);
    std::vector<Buffer> grads;
    // Both devices copy their result to host memory: a timed call includes the wait.
    auto run = [&] {
      if (grad)
        model.loss_and_grad(b, targets.data(), 1.0f, grads,
                            {.checkpoint_blocks = mode == "grad-checkpoint"});
      else if (mode == "logits")
        model.logits(b, out.data());
      else
        model.token_losses(b, targets.data(), out.data());
    };
    run();  // warm-up: page in the weights, size the scratch buffers
    double best = 1e30, total = 0;
    for (int i = 0; i < iters; ++i) {
      auto s = std::chrono::steady_clock::now();
      run();
      double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - s).count();
      best = std::min(best, dt);
      total += dt;
    }
    // device memory in use at its peak: weights + activations
    const double gpu_peak_gib = double(ops::peak_bytes_in_use(placed)) / (1 << 30);
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    const double peak_rss_gib = double(usage.ru_maxrss) / (1 << 20);  // ru_maxrss is in KiB
    std::printf(
        "{\"model\": \"%s\", \"arch\": \"%s\", \"dtype\": \"%s\", \"mode\": \"%s\", \"batch\": "
        "%lld, "
        "\"seq\": %lld, \"threads\": %d, \"parameters\": %lld, \"load_s\": %.3f, "
        "\"best_s\": %.4f, \"mean_s\": %.4f, \"tokens_per_s\": %.1f, \"device\": \"%s\", "
        "\"gpu_peak_gib\": %.2f, \"peak_rss_gib\": %.3f, \"cpu_path\": \"%s\"}\n",
        dir.c_str(), model.arch().name, dtype.c_str(), mode.c_str(), (long long)batch,
        (long long)seq, ThreadPool::global().size(), (long long)model.weights().parameter_count,
        load_s, best, total / iters, double(batch * seq) / best, device.c_str(), gpu_peak_gib,
        peak_rss_gib, cpu::isa_name(cpu::active_isa()));
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_forward: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
