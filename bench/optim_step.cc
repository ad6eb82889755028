// bench_optim_step: one optimizer step (clip_grad_norm + AdamW or SGD) over N parameters.
//   bench_optim_step [--numel 33554432] [--dtype f32|bf16] [--method adamw|sgd] [--threads N]
//                    [--steps 5]
// Prints one JSON object: ms per step (clip + update), and the bytes a step streams per second.
// bench/optim_step.py times torch.optim.AdamW + clip_grad_norm_ on the same sizes.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "core/error.h"
#include "core/thread_pool.h"
#include "optim/optimizer.h"

using namespace zoft;

int main(int argc, char** argv) {
  int64_t numel = int64_t(1) << 25;
  std::string dtype = "f32", method = "adamw";
  int threads = 0, steps = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--numel")
      numel = std::atoll(value.c_str());
    else if (flag == "--dtype")
      dtype = value;
    else if (flag == "--method")
      method = value;
    else if (flag == "--threads")
      threads = std::atoi(value.c_str());
    else if (flag == "--steps")
      steps = std::atoi(value.c_str());
    else {
      std::fprintf(stderr, "bench_optim_step: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  try {
    ThreadPool::set_global_threads(threads);
    DType type = parse_dtype(dtype);
    // Four matrices, as a decoder's parameters are a few large tensors.
    std::vector<OwnedTensor> storage;
    std::vector<ParameterRef> params;
    for (int p = 0; p < 4; ++p) {
      storage.push_back(OwnedTensor::zeros(type, {numel / 4}));
      params.push_back({fmt::format("p{}", p), uint32_t(p), 0, storage.back().view, true});
    }
    optim::OptimizerOptions options;
    options.method = optim::parse_method(method);
    options.lr = 1e-4;
    options.weight_decay = 0.01;
    options.momentum = 0.9;
    optim::Optimizer optimizer(options, params);
    auto grads = optim::make_gradients(params);
    std::mt19937 rng(1);
    std::normal_distribution<float> normal(0.0f, 1e-3f);
    for (auto& g : grads)
      for (size_t i = 0; i < g.size() / 4; ++i) g.as<float>()[i] = normal(rng);
    double best = 1e30;
    for (int s = 0; s < steps; ++s) {
      auto start = std::chrono::steady_clock::now();
      optim::clip_grad_norm(grads, 1.0);
      optimizer.step(params, grads);
      std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
      best = std::min(best, took.count());
    }
    // Streamed per element: grad read twice (norm, update) and written by clipping (none here:
    // the norm is below 1), weights, moments (and master) read and written.
    double state = options.method == optim::Method::kAdamW ? 2 : 1;
    double bytes_per = 8 + 2 * (dtype_size(type) + 4 * state + (type == DType::BF16 ? 4 : 0));
    std::printf(
        "{\"method\": \"%s\", \"dtype\": \"%s\", \"numel\": %lld, \"threads\": %d, "
        "\"ms_per_step\": %.3f, \"gb_per_s\": %.2f}\n",
        method.c_str(), dtype.c_str(), (long long)numel, ThreadPool::global().size(), best * 1e3,
        bytes_per * double(numel) / best / 1e9);
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_optim_step: %s\n", e.what());
    return 1;
  }
  return 0;
}
