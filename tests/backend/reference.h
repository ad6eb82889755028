// Naive double-precision references for the ops of backend/ops.h, written for clarity only:
// every implementation (CPU, CUDA) is compared with these.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "backend/cpu/ops.h"

namespace zoft::reference {

// y[m][n] = sum_k x[m][k] w(n, k) + bias[n]; w is [N,K] or, when kn, [K,N].
inline std::vector<double> linear(const std::vector<double>& x, int64_t M, int64_t K,
                                  const std::vector<double>& w, bool kn, int64_t N,
                                  const float* bias) {
  std::vector<double> y(M * N);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double sum = bias ? bias[n] : 0.0;
      for (int64_t k = 0; k < K; ++k) sum += x[m * K + k] * (kn ? w[k * N + n] : w[n * K + k]);
      y[m * N + n] = sum;
    }
  return y;
}

inline std::vector<double> layer_norm(const std::vector<float>& x, const std::vector<float>& gamma,
                                      const float* beta, int64_t rows, int64_t dim, double eps) {
  std::vector<double> out(rows * dim);
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < dim; ++i) mean += x[r * dim + i];
    mean /= dim;
    for (int64_t i = 0; i < dim; ++i) var += (x[r * dim + i] - mean) * (x[r * dim + i] - mean);
    var /= dim;
    for (int64_t i = 0; i < dim; ++i)
      out[r * dim + i] =
          (x[r * dim + i] - mean) / std::sqrt(var + eps) * gamma[i] + (beta ? beta[i] : 0.0);
  }
  return out;
}

inline std::vector<double> rms_norm(const std::vector<float>& x, const std::vector<float>& gamma,
                                    int64_t rows, int64_t dim, double eps, bool unit_offset) {
  std::vector<double> out(rows * dim);
  for (int64_t r = 0; r < rows; ++r) {
    double mean_sq = 0;
    for (int64_t i = 0; i < dim; ++i) mean_sq += double(x[r * dim + i]) * x[r * dim + i];
    mean_sq /= dim;
    for (int64_t i = 0; i < dim; ++i)
      out[r * dim + i] =
          x[r * dim + i] / std::sqrt(mean_sq + eps) * ((unit_offset ? 1.0 : 0.0) + gamma[i]);
  }
  return out;
}

inline double activation(Activation kind, double x) {
  switch (kind) {
    case Activation::ReLU:
      return x > 0 ? x : 0;
    // 1 + erf(z) as erfc(-z): in double too, 1 + erf cancels in the negative tail.
    case Activation::GeluErf:
      return 0.5 * x * std::erfc(-x / std::sqrt(2.0));
    case Activation::GeluTanh: {  // 0.5 x (1 + tanh u) = x / (1 + e^-2u), again without cancelling
      double u = std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x);
      return x / (1 + std::exp(-2 * u));
    }
    case Activation::SiLU:
      return x / (1 + std::exp(-x));
  }
  return 0;
}

// Rotary embedding; the angle is the f32 product position * inv_freq, as in HF.
inline std::vector<double> rope(const std::vector<float>& x, const std::vector<int32_t>& positions,
                                int64_t rows, int64_t heads, int64_t head_dim, int64_t rotary_dim,
                                const std::vector<float>& inv_freq, double scaling) {
  std::vector<double> out(x.begin(), x.end());
  const int64_t half = rotary_dim / 2;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < half; ++i) {
        double angle = float(positions[r]) * inv_freq[i];
        double c = std::cos(angle) * scaling, s = std::sin(angle) * scaling;
        int64_t base = (r * heads + h) * head_dim;
        double x1 = x[base + i], x2 = x[base + i + half];
        out[base + i] = x1 * c - x2 * s;
        out[base + i + half] = x2 * c + x1 * s;
      }
  return out;
}

// Full softmax attention with the mask written out key by key.
inline std::vector<double> attention(const std::vector<float>& q, const std::vector<float>& k,
                                     const std::vector<float>& v, const uint8_t* key_valid,
                                     const cpu::AttentionShape& s, double scale, int64_t window,
                                     double softcap) {
  const int64_t D = s.head_dim, group = s.q_heads / s.kv_heads, q_offset = s.kv_len - s.q_len;
  std::vector<double> out(s.batch * s.q_len * s.q_heads * D, 0.0);
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t t = 0; t < s.q_len; ++t)
      for (int64_t h = 0; h < s.q_heads; ++h) {
        const int64_t qp = q_offset + t, hk = h / group;
        const float* qv = &q[((b * s.q_len + t) * s.q_heads + h) * D];
        std::vector<double> score(s.kv_len);
        std::vector<bool> seen(s.kv_len, false);
        double best = -INFINITY;
        for (int64_t key = 0; key < s.kv_len; ++key) {
          bool visible = key <= qp && (!key_valid || key_valid[b * s.kv_len + key]) &&
                         (window <= 0 || qp - key < window);
          if (!visible) continue;
          const float* kv = &k[((b * s.kv_capacity + key) * s.kv_heads + hk) * D];
          double dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += double(qv[d]) * kv[d];
          dot *= scale;
          if (softcap > 0) dot = softcap * std::tanh(dot / softcap);
          score[key] = dot;
          seen[key] = true;
          best = std::max(best, dot);
        }
        if (best == -INFINITY) continue;  // no key: zeros
        double total = 0;
        for (int64_t key = 0; key < s.kv_len; ++key)
          if (seen[key]) total += std::exp(score[key] - best);
        double* o = &out[((b * s.q_len + t) * s.q_heads + h) * D];
        for (int64_t key = 0; key < s.kv_len; ++key) {
          if (!seen[key]) continue;
          double p = std::exp(score[key] - best) / total;
          const float* vv = &v[((b * s.kv_capacity + key) * s.kv_heads + hk) * D];
          for (int64_t d = 0; d < D; ++d) o[d] += p * vv[d];
        }
      }
  return out;
}

inline std::vector<double> cross_entropy(const std::vector<float>& logits,
                                         const std::vector<int32_t>& targets, int64_t rows,
                                         int64_t vocab) {
  std::vector<double> loss(rows, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    if (targets[r] < 0) continue;
    double best = -INFINITY, total = 0;
    for (int64_t i = 0; i < vocab; ++i) best = std::max(best, double(logits[r * vocab + i]));
    for (int64_t i = 0; i < vocab; ++i) total += std::exp(logits[r * vocab + i] - best);
    loss[r] = std::log(total) + best - logits[r * vocab + targets[r]];
  }
  return loss;
}

}  // namespace zoft::reference
