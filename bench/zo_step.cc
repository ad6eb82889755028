// bench_zo_step: MeZO-SGD step time of an HF model directory on random tokens.
//   bench_zo_step MODEL_DIR [--batch 8] [--seq 256] [--dtype f32|bf16] [--threads N]
//                 [--steps 3] [--samples 1] [--order zo2|plain] [--device cpu|cuda]
//                 [--random-init 1] [--max-memory gpu=B] [--prefetch K]
// Prints one JSON object; tokens_per_s counts each token of the batch once per step.
// --device cuda: the same stepper on the model placed on the GPU (Decoder::to_device);
// gpu_peak_gib is the device memory in use at its peak. --random-init 1: MODEL_DIR is a
// config.json (or a directory holding one), weights drawn in memory (bench/configs/).
// --max-memory gpu=B (with --device cuda, or sim on a machine without a GPU): the model stays in
// RAM and streams through the GPU tier (runtime/gpu_tier.h) within B; the JSON adds the bytes
// over the bus per step, the bus floor at the measured host-to-device bandwidth, the time
// compute waited for uploads, and the tier's device memory (in gpu_peak_gib too).
// bench/zo_step.py runs it side by side with a PyTorch MeZO loop.
#include "train/zo_step.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "backend/cpu/isa.h"
#include "bench_util.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "runtime/gpu_tier.h"
#include "runtime/plan.h"

using namespace zoft;

namespace {

// --max-memory gpu=B: the GPU tier over the model (its weights stay in RAM, the homes).
std::unique_ptr<runtime::GpuTier> attach_tier(Decoder& model, const std::string& device,
                                              const std::string& max_memory, int64_t prefetch,
                                              bool random_init) {
  runtime::Budgets budgets = runtime::parse_max_memory(max_memory);
  if (!budgets.gpu || !runtime::is_gpu_tier_device(device))
    fail("--max-memory needs gpu=B and --device cuda (or sim)");
  if (random_init)  // the drawn weights are writable views of their own store, matrices in the
    model.mutable_weights().trainable = true;  // compute dtype: no second copy of OPT-30B in RAM
  else
    make_trainable(model);
  runtime::GpuTierOptions o;
  o.device = device;
  o.budget = *budgets.gpu;
  o.prefetch = prefetch;
  return runtime::GpuTier::attach(model, o);
}

// What the tier measured over `steps` steps (the warm-up included), as more fields of the JSON
// object; its report line goes to stderr.
std::string tier_fields(const runtime::GpuTier& tier, int steps) {
  runtime::GpuTierReport r = tier.report();
  uint64_t streamed = 0;
  for (size_t b = 0; b < tier.plan().streamed.size(); ++b)
    if (tier.plan().streamed[b]) streamed += tier.plan().block_bytes[b];
  std::fprintf(stderr, "zoft: %s\n", r.text().c_str());
  return fmt::format(
      ", \"tier_bytes_up_per_step\": {:.0f}, \"tier_bytes_down_per_step\": {:.0f}, "
      "\"tier_streamed_bytes\": {}, \"h2d_gbps\": {:.2f}, \"bus_floor_s_per_step\": {:.4f}, "
      "\"upload_wait_s_per_step\": {:.4f}, \"tier_device_bytes\": {}",
      double(r.stats.bytes_uploaded) / steps, double(r.stats.bytes_written_back) / steps, streamed,
      r.h2d_gbps, double(streamed) / (r.h2d_gbps * 1e9), r.stats.upload_wait_seconds / steps,
      tier.plan().device_bytes());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: bench_zo_step MODEL_DIR [--batch B --seq T --dtype f32|bf16 "
                 "--threads N --steps K --samples n --order zo2|plain]\n");
    return 2;
  }
  std::string dir = argv[1], dtype = "f32", order = "zo2", device = "cpu", max_memory;
  int64_t prefetch = 2;
  bool random_init = false;
  int64_t batch = 8, seq = 256;
  int threads = 0, steps = 3, samples = 1;
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
    else if (flag == "--steps")
      steps = std::atoi(value.c_str());
    else if (flag == "--samples")
      samples = std::atoi(value.c_str());
    else if (flag == "--order")
      order = value;
    else if (flag == "--device")
      device = value;
    else if (flag == "--max-memory")
      max_memory = value;
    else if (flag == "--prefetch")
      prefetch = std::atoll(value.c_str());
    else if (flag == "--random-init")
      random_init = value == "1" || value == "true";
    else {
      std::fprintf(stderr, "bench_zo_step: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  try {
    ThreadPool::set_global_threads(threads);
    Decoder model = random_init ? Decoder::random_init(dir, parse_dtype(dtype))
                                : Decoder::load(dir, parse_dtype(dtype));
    const Device placed = device == "sim" ? Device::CPU : parse_device(device);
    std::unique_ptr<runtime::GpuTier> tier;
    if (!max_memory.empty()) {
      tier = attach_tier(model, device, max_memory, prefetch, random_init);
    } else if (placed != Device::CPU) {
      // No make_trainable first: the placed copy is owned and writable, and a second host copy
      // of an OPT-30B would not fit in RAM.
      model = model.to_device(placed);
    }
    zo::MezoOptions options;
    options.lr = 1e-6;
    options.eps = 1e-3;
    options.samples = samples;
    options.seed = 1;
    zo::MezoSgd optimizer(options);
    ZoStepper stepper(model, optimizer, order == "plain" ? ZoOrder::Plain : ZoOrder::Zo2);

    TokenBatch b = bench::random_token_batch(model.config().vocab_size, batch, seq);
    std::vector<int32_t> targets = Decoder::next_token_targets(b);
    auto mean = [&](const std::vector<float>& loss) {
      double s = 0;
      int64_t n = 0;
      for (size_t i = 0; i < loss.size(); ++i)
        if (targets[i] >= 0) s += loss[i], ++n;
      return s / double(n);
    };
    auto one_step = [&] {
      stepper.forward_passes(b, targets, mean);
      stepper.end_step();
    };
    one_step();  // warm-up
    double best = 1e30, total = 0;
    for (int i = 0; i < steps; ++i) {
      auto s = std::chrono::steady_clock::now();
      one_step();
      double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - s).count();
      best = std::min(best, dt);
      total += dt;
    }
    stepper.finish();
    double gpu_peak = double(ops::peak_bytes_in_use(placed));
    if (tier) gpu_peak += double(tier->plan().device_bytes());  // the tier's own cudaMalloc
    const std::string extra = tier ? tier_fields(*tier, steps + 1) : "";
    std::printf(
        "{\"model\": \"%s\", \"arch\": \"%s\", \"dtype\": \"%s\", \"order\": \"%s\", "
        "\"batch\": %lld, \"seq\": %lld, \"samples\": %d, \"threads\": %d, "
        "\"parameters\": %lld, \"best_s\": %.4f, \"mean_s\": %.4f, \"tokens_per_s\": %.1f, "
        "\"cpu_path\": \"%s\", \"device\": \"%s\", \"gpu_peak_gib\": %.2f%s}\n",
        dir.c_str(), model.arch().name, dtype.c_str(), order.c_str(), (long long)batch,
        (long long)seq, samples, ThreadPool::global().size(),
        (long long)model.weights().parameter_count, best, total / steps, double(batch * seq) / best,
        cpu::isa_name(cpu::active_isa()), device.c_str(), gpu_peak / (1 << 30), extra.c_str());
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_zo_step: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
