// The CPU backward ops next to their forwards, on Gemma-3-270M-like shapes (width 640 / 576,
// 4 query heads, 1 kv head, head_dim 256): milliseconds per call, best of the timed calls.
//
// Usage: bench_backward [--threads N] [--seconds S] [--cpu-time] [--attention]
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "backend/ops_backward.h"
#include "core/dtype.h"
#include "core/thread_pool.h"

using namespace zoft;

// --cpu-time: the process's CPU time instead of the wall clock (with --threads 1 on a shared
// machine, what one core does while it runs the op).
static bool g_cpu_time = false;
static double now() {
  if (g_cpu_time) {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Best wall time of fn over about `seconds` (at least 3 calls).
static double best_ms(const std::function<void()>& fn, double seconds) {
  fn();  // warm up (scratch buffers, pages)
  double best = 1e30, start = now();
  for (int calls = 0; calls < 3 || now() - start < seconds; ++calls) {
    double t0 = now();
    fn();
    best = std::min(best, now() - t0);
  }
  return best * 1e3;
}

static std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

static void bench_linear(int64_t M, int64_t N, int64_t K, double seconds) {
  auto x = random_floats(M * K, 1), dy = random_floats(M * N, 2), w = random_floats(N * K, 3);
  std::vector<uint16_t> w16(w.size());
  for (size_t i = 0; i < w.size(); ++i) w16[i] = f32_to_bf16(w[i]);
  std::vector<float> y(M * N), dx(M * K), dw(N * K), db(N);
  Tensor wf(w.data(), DType::F32, {N, K}), wb(w16.data(), DType::BF16, {N, K});
  const double gflop = 2e-9 * double(M * N * K);
  auto line = [&](const char* what, double ms) {
    std::printf("  %-36s %8.3f ms  %6.1f GFLOP/s\n", what, ms, gflop / ms * 1e3);
  };
  std::printf("linear M=%lld N=%lld K=%lld\n", (long long)M, (long long)N, (long long)K);
  line("forward f32 (cpu::linear)",
       best_ms([&] { cpu::linear(x.data(), M, K, wf, false, nullptr, y.data()); }, seconds));
  line(
      "backward_input f32",
      best_ms([&] { cpu::linear_backward_input(dy.data(), M, N, wf, false, dx.data()); }, seconds));
  line("forward bf16 (cpu::linear)",
       best_ms([&] { cpu::linear(x.data(), M, K, wb, false, nullptr, y.data()); }, seconds));
  line(
      "backward_input bf16",
      best_ms([&] { cpu::linear_backward_input(dy.data(), M, N, wb, false, dx.data()); }, seconds));
  line("backward_weight [N,K] + bias",
       best_ms(
           [&] {
             cpu::linear_backward_weight(dy.data(), x.data(), M, N, K, false, dw.data(), db.data());
           },
           seconds));
  line("backward_weight [K,N]", best_ms(
                                    [&] {
                                      cpu::linear_backward_weight(dy.data(), x.data(), M, N, K,
                                                                  true, dw.data(), nullptr);
                                    },
                                    seconds));
}

static void bench_attention(int64_t B, int64_t T, double seconds) {
  AttentionShape s;
  s.batch = B, s.q_len = T, s.kv_len = T, s.kv_capacity = T, s.q_heads = 4, s.kv_heads = 1,
  s.head_dim = 256;
  const int64_t qn = B * T * s.q_heads * s.head_dim, kvn = B * T * s.kv_heads * s.head_dim;
  auto q = random_floats(qn, 4), k = random_floats(kvn, 5), v = random_floats(kvn, 6),
       dout = random_floats(qn, 7);
  std::vector<float> out(qn), dq(qn), dk(kvn), dv(kvn);
  const float scale = 1.0f / 16;
  std::printf("attention B=%lld T=%lld Hq=4 Hkv=1 D=256 causal\n", (long long)B, (long long)T);
  double fwd = best_ms(
      [&] { cpu::attention(q.data(), k.data(), v.data(), nullptr, out.data(), s, scale, 0, 0.0f); },
      seconds);
  double bwd = best_ms(
      [&] {
        cpu::attention_backward(q.data(), k.data(), v.data(), nullptr, out.data(), dout.data(),
                                dq.data(), dk.data(), dv.data(), s, scale, 0, 0.0f);
      },
      seconds);
  std::printf("  %-36s %8.3f ms\n  %-36s %8.3f ms\n", "forward", fwd, "backward", bwd);
}

// Row-wise ops: rms_norm, gated GELU, cross entropy over a Gemma-3-sized vocabulary.
static void bench_rows(double seconds) {
  const int64_t rows = 2048, dim = 640, ffn = 2048, ce_rows = 64, vocab = 262144;
  auto x = random_floats(rows * dim, 8), gamma = random_floats(dim, 9),
       dy = random_floats(rows * dim, 10);
  std::vector<float> out(rows * dim), dx(rows * dim), dgamma(dim);
  auto line = [](const char* what, double ms) { std::printf("  %-36s %8.3f ms\n", what, ms); };
  std::printf("rows=%lld dim=%lld ffn=%lld; cross entropy %lld x %lld\n", (long long)rows,
              (long long)dim, (long long)ffn, (long long)ce_rows, (long long)vocab);
  line("rms_norm forward",
       best_ms([&] { cpu::rms_norm(x.data(), gamma.data(), out.data(), rows, dim, 1e-6f, true); },
               seconds));
  line("rms_norm backward", best_ms(
                                [&] {
                                  cpu::rms_norm_backward(x.data(), gamma.data(), dy.data(),
                                                         dx.data(), dgamma.data(), rows, dim, 1e-6f,
                                                         true);
                                },
                                seconds));
  auto fused = random_floats(rows * 2 * ffn, 11), dh = random_floats(rows * ffn, 12);
  std::vector<float> h(rows * ffn), dfused(rows * 2 * ffn);
  line("gated gelu_tanh forward", best_ms(
                                      [&] {
                                        cpu::gated_activation(Activation::GeluTanh, fused.data(),
                                                              fused.data() + ffn, 2 * ffn, h.data(),
                                                              rows, ffn);
                                      },
                                      seconds));
  line("gated gelu_tanh backward", best_ms(
                                       [&] {
                                         cpu::gated_activation_backward(
                                             Activation::GeluTanh, fused.data(), fused.data() + ffn,
                                             2 * ffn, dh.data(), dfused.data(), dfused.data() + ffn,
                                             2 * ffn, rows, ffn);
                                       },
                                       seconds));
  auto logits = random_floats(ce_rows * vocab, 13), dloss = random_floats(ce_rows, 14);
  std::vector<int32_t> targets(ce_rows, 7);
  std::vector<float> loss(ce_rows), dlogits(ce_rows * vocab);
  line("cross_entropy forward",
       best_ms(
           [&] { cpu::cross_entropy(logits.data(), targets.data(), ce_rows, vocab, loss.data()); },
           seconds));
  line("cross_entropy backward", best_ms(
                                     [&] {
                                       cpu::cross_entropy_backward(logits.data(), targets.data(),
                                                                   dloss.data(), ce_rows, vocab,
                                                                   dlogits.data());
                                     },
                                     seconds));
}

int main(int argc, char** argv) {
  int threads = 0;
  double seconds = 1.0;
  bool attention_only = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc)
      threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--seconds") && i + 1 < argc)
      seconds = std::atof(argv[++i]);
    else if (!std::strcmp(argv[i], "--cpu-time"))
      g_cpu_time = true;
    else if (!std::strcmp(argv[i], "--attention"))
      attention_only = true;
    else {
      std::fprintf(
          stderr, "usage: bench_backward [--threads N] [--seconds S] [--cpu-time] [--attention]\n");
      return 2;
    }
  }
  ThreadPool::set_global_threads(threads);
  std::printf("threads: %d\n", ThreadPool::global().size());
  if (!attention_only) {
    bench_linear(2048, 576, 576, seconds);
    bench_linear(2048, 2048, 640, seconds);
    bench_rows(seconds);
  }
  bench_attention(1, 512, seconds);
  return 0;
}
