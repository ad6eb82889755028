// Double-precision references of the backward ops (backend/ops_backward.h), written from the
// calculus for clarity only, and the tools that prove them: central finite differences of the
// double forward references (reference.h) and a max-relative-error comparison.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "backend/ops.h"

namespace zoft::backward_reference {

// max_i |got[i] - want[i]| / max_i |want[i]| (0 when both are all zero).
template <class T>
double relative_error(const std::vector<T>& got, const std::vector<double>& want) {
  EXPECT_EQ(got.size(), want.size());
  double diff = 0, scale = 0;
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    if (std::isnan(double(got[i]))) return INFINITY;
    diff = std::max(diff, std::abs(double(got[i]) - want[i]));
    scale = std::max(scale, std::abs(want[i]));
  }
  return scale > 0 ? diff / scale : diff;
}

template <class T>
void expect_relative(const std::vector<T>& got, const std::vector<double>& want, double tol,
                     const std::string& what) {
  EXPECT_LE(relative_error(got, want), tol) << what;
}

// d loss / d x[i] by central differences, for a loss of f32 inputs evaluated in double. The step
// is taken on the f32 grid, and the divisor is the step actually taken, so the only error is
// the O(h^2) truncation.
template <class Loss>
std::vector<double> finite_difference(std::vector<float> x, const Loss& loss, float h = 1e-3f) {
  std::vector<double> grad(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const float orig = x[i];
    const float up = orig + h, down = orig - h;
    x[i] = up;
    const double loss_up = loss(x);
    x[i] = down;
    const double loss_down = loss(x);
    x[i] = orig;
    grad[i] = (loss_up - loss_down) / (double(up) - double(down));
  }
  return grad;
}

// sum_i w[i] y[i]: the scalar whose gradient is the VJP with w.
inline double dot(const std::vector<float>& w, const std::vector<double>& y) {
  double s = 0;
  for (size_t i = 0; i < y.size(); ++i) s += double(w[i]) * y[i];
  return s;
}

inline std::vector<double> widen(const std::vector<float>& v) {
  return std::vector<double>(v.begin(), v.end());
}

// ---- linear -----------------------------------------------------------------------------------

// dx[m][k] = sum_n dy[m][n] w(n, k)
inline std::vector<double> linear_dx(const std::vector<double>& dy, int64_t M, int64_t N,
                                     const std::vector<double>& w, bool kn, int64_t K) {
  std::vector<double> dx(M * K, 0.0);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t n = 0; n < N; ++n)
        dx[m * K + k] += dy[m * N + n] * (kn ? w[k * N + n] : w[n * K + k]);
  return dx;
}

// dw(n, k) = sum_m dy[m][n] x[m][k], laid out as the weight.
inline std::vector<double> linear_dw(const std::vector<float>& dy, const std::vector<float>& x,
                                     int64_t M, int64_t N, int64_t K, bool kn) {
  std::vector<double> dw(N * K, 0.0);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k)
        dw[kn ? k * N + n : n * K + k] += double(dy[m * N + n]) * x[m * K + k];
  return dw;
}

// ---- norms ------------------------------------------------------------------------------------

struct NormGrads {
  std::vector<double> dx, dgamma, dbeta;
};

// Both norms: centered = layer_norm (shift by the mean), offset = 1 for Gemma's unit_offset.
inline NormGrads norm(const std::vector<float>& x, const std::vector<float>& gamma, double offset,
                      const std::vector<float>& dy, int64_t rows, int64_t dim, double eps,
                      bool centered) {
  NormGrads g{std::vector<double>(rows * dim), std::vector<double>(dim, 0.0),
              std::vector<double>(dim, 0.0)};
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = &x[r * dim];
    const float* dyr = &dy[r * dim];
    double mean = 0, var = 0;
    if (centered) {
      for (int64_t i = 0; i < dim; ++i) mean += xr[i];
      mean /= dim;
    }
    for (int64_t i = 0; i < dim; ++i) var += (xr[i] - mean) * (xr[i] - mean);
    const double rstd = 1 / std::sqrt(var / dim + eps);
    double mean_dyg = 0, mean_dyg_xhat = 0;
    for (int64_t i = 0; i < dim; ++i) {
      const double dyg = dyr[i] * (gamma[i] + offset), xhat = (xr[i] - mean) * rstd;
      mean_dyg += dyg / dim;
      mean_dyg_xhat += dyg * xhat / dim;
    }
    if (!centered) mean_dyg = 0;
    for (int64_t i = 0; i < dim; ++i) {
      const double xhat = (xr[i] - mean) * rstd;
      g.dx[r * dim + i] = rstd * (dyr[i] * (gamma[i] + offset) - mean_dyg - xhat * mean_dyg_xhat);
      g.dgamma[i] += dyr[i] * xhat;
      g.dbeta[i] += dyr[i];
    }
  }
  return g;
}

// ---- elementwise ------------------------------------------------------------------------------

// d act / dx, from the calculus of each definition in reference::activation.
inline double activation_slope(Activation kind, double x) {
  switch (kind) {
    case Activation::ReLU:
      return x > 0 ? 1 : 0;
    case Activation::GeluErf:
      return 0.5 * std::erfc(-x / std::sqrt(2.0)) +
             x * std::exp(-0.5 * x * x) / std::sqrt(2 * M_PI);
    case Activation::GeluTanh: {
      const double c = std::sqrt(2 / M_PI), u = c * (x + 0.044715 * x * x * x);
      const double t = std::tanh(u);
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x);
    }
    case Activation::SiLU: {
      const double s = 1 / (1 + std::exp(-x));
      return s * (1 + x * (1 - s));
    }
  }
  return 0;
}

// The transpose of reference::rope: rotation by -angle.
inline std::vector<double> rope_backward(const std::vector<float>& dy,
                                         const std::vector<int32_t>& positions, int64_t rows,
                                         int64_t heads, int64_t head_dim, int64_t rotary_dim,
                                         const std::vector<float>& inv_freq, double scaling) {
  std::vector<double> dx(dy.begin(), dy.end());
  const int64_t half = rotary_dim / 2;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < half; ++i) {
        const double angle = float(positions[r]) * inv_freq[i];
        const double c = std::cos(angle) * scaling, s = std::sin(angle) * scaling;
        const int64_t base = (r * heads + h) * head_dim;
        const double d1 = dy[base + i], d2 = dy[base + i + half];
        dx[base + i] = d1 * c + d2 * s;
        dx[base + i + half] = d2 * c - d1 * s;
      }
  return dx;
}

// ---- attention --------------------------------------------------------------------------------

struct AttentionGrads {
  std::vector<double> dq, dk, dv;
};

// Full softmax per query, then dS = P (dP - rowsum(P dP)), through the softcap's tanh.
inline AttentionGrads attention(const std::vector<float>& q, const std::vector<float>& k,
                                const std::vector<float>& v, const uint8_t* key_valid,
                                const std::vector<float>& dout, const AttentionShape& s,
                                double scale, int64_t window, double softcap) {
  const int64_t D = s.head_dim, group = s.q_heads / s.kv_heads, q_offset = s.kv_len - s.q_len;
  const int64_t kv_size = s.batch * s.kv_capacity * s.kv_heads * D;
  AttentionGrads g{std::vector<double>(q.size(), 0.0), std::vector<double>(kv_size, 0.0),
                   std::vector<double>(kv_size, 0.0)};
  auto q_at = [&](int64_t b, int64_t t, int64_t h) {
    return ((b * s.q_len + t) * s.q_heads + h) * D;
  };
  auto kv_at = [&](int64_t b, int64_t key, int64_t hk) {
    return ((b * s.kv_capacity + key) * s.kv_heads + hk) * D;
  };
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t t = 0; t < s.q_len; ++t)
      for (int64_t h = 0; h < s.q_heads; ++h) {
        const int64_t qp = q_offset + t, hk = h / group, qi = q_at(b, t, h);
        std::vector<int64_t> keys;
        std::vector<double> score;
        for (int64_t key = 0; key < s.kv_len; ++key) {
          if (key > qp || (key_valid && !key_valid[b * s.kv_len + key]) ||
              (window > 0 && qp - key >= window))
            continue;
          double dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += double(q[qi + d]) * k[kv_at(b, key, hk) + d];
          dot *= scale;
          if (softcap > 0) dot = softcap * std::tanh(dot / softcap);
          keys.push_back(key);
          score.push_back(dot);
        }
        if (keys.empty()) continue;  // the output was zeros: no gradient anywhere
        const double best = *std::max_element(score.begin(), score.end());
        double total = 0;
        for (double sc : score) total += std::exp(sc - best);
        std::vector<double> p(keys.size()), dp(keys.size());
        double rowsum = 0;
        for (size_t j = 0; j < keys.size(); ++j) {
          p[j] = std::exp(score[j] - best) / total;
          for (int64_t d = 0; d < D; ++d)
            dp[j] += double(dout[qi + d]) * v[kv_at(b, keys[j], hk) + d];
          rowsum += p[j] * dp[j];
        }
        for (size_t j = 0; j < keys.size(); ++j) {
          const int64_t ki = kv_at(b, keys[j], hk);
          double dscore = p[j] * (dp[j] - rowsum);
          if (softcap > 0) dscore *= 1 - (score[j] / softcap) * (score[j] / softcap);
          for (int64_t d = 0; d < D; ++d) {
            g.dq[qi + d] += dscore * scale * k[ki + d];
            g.dk[ki + d] += dscore * scale * q[qi + d];
            g.dv[ki + d] += p[j] * dout[qi + d];
          }
        }
      }
  return g;
}

// ---- loss -------------------------------------------------------------------------------------

inline std::vector<double> cross_entropy(const std::vector<float>& logits,
                                         const std::vector<int32_t>& targets,
                                         const std::vector<float>& dloss, int64_t rows,
                                         int64_t vocab) {
  std::vector<double> grad(rows * vocab, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    if (targets[r] < 0) continue;
    double best = -INFINITY, total = 0;
    for (int64_t i = 0; i < vocab; ++i) best = std::max(best, double(logits[r * vocab + i]));
    for (int64_t i = 0; i < vocab; ++i) total += std::exp(logits[r * vocab + i] - best);
    for (int64_t i = 0; i < vocab; ++i)
      grad[r * vocab + i] = std::exp(logits[r * vocab + i] - best) / total * dloss[r];
    grad[r * vocab + targets[r]] -= dloss[r];
  }
  return grad;
}

}  // namespace zoft::backward_reference
