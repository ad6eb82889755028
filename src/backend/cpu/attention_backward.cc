// Backward of cpu::attention, flash-style: no T x T matrix. With scores s = q.k * scale (then
// softcap * tanh(s / softcap)), P = softmax(s) per query, O = P V and D_i = rowsum(dO_i * O_i):
//   dV_j = sum_i P_ij dO_i,   dP_ij = dO_i . V_j,   dS_ij = P_ij (dP_ij - D_i) (1 - (s_ij/cap)^2)
//   dQ_i = scale sum_j dS_ij K_j,   dK_j = scale sum_i dS_ij Q_i.
// P is recomputed tile by tile from each query's logsumexp L_i (P_ij = exp(s_ij - L_i)).
//
// Two passes, each owning what it writes, so that no two threads ever add into the same
// gradient and the bits do not depend on scheduling:
//   1. query tiles (batch, query head, 64 queries): sweep the visible keys once for L_i, then
//      again for dQ; L_i and D_i are kept for pass 2.
//   2. key tiles (batch, kv head, 64 keys): for every query head of the group and every query
//      that may see the tile, recompute P and dS and sum dK, dV.
// The small products are written as axpy loops over the 64 lanes of a tile (or over head_dim),
// which the compiler vectorises; exp / tanh use simd.h on AVX-512 builds.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "backend/cpu/simd.h"
#include "backend/ops_backward.h"
#include "core/error.h"
#include "core/thread_pool.h"

namespace zoft::cpu {
namespace attention_bwd {

constexpr int64_t kQT = 64;  // queries per tile
constexpr int64_t kKT = 64;  // keys per tile

struct Problem {
  const float *q, *k, *v, *out, *dout;
  const uint8_t* key_valid;
  float *dq, *dk, *dv;
  AttentionShape s;
  float scale;
  int64_t window;
  float softcap;
  int64_t q_offset;
  std::vector<float> lse, delta;  // [B, Hq, T]: logsumexp (+inf: no key seen), rowsum(dO * O)

  int64_t q_index(int64_t b, int64_t t, int64_t h) const {
    return ((b * s.q_len + t) * s.q_heads + h) * s.head_dim;
  }
  int64_t kv_index(int64_t b, int64_t key, int64_t hk) const {
    return ((b * s.kv_capacity + key) * s.kv_heads + hk) * s.head_dim;
  }
  int64_t row_index(int64_t b, int64_t h, int64_t t) const {
    return (b * s.q_heads + h) * s.q_len + t;
  }
  // Whether query position qp sees key `key` (< kv_len): causal, window, padding.
  bool visible(int64_t b, int64_t qp, int64_t key) const {
    return key <= qp && (window <= 0 || qp - key < window) &&
           (!key_valid || key_valid[b * s.kv_len + key] != 0);
  }
  int64_t first_key(int64_t qp) const {
    return window > 0 ? std::max<int64_t>(0, qp - window + 1) : 0;
  }
};

// Per-thread buffers, reused between units and calls.
struct Scratch {
  std::vector<float> kt, vt;        // [D][kKT] key / value tile, transposed
  std::vector<float> score, prob;   // [kQT][kKT] capped scores, then P
  std::vector<float> dprob;         // [kQT][kKT] dP, then dS
  std::vector<float> acc_a, acc_b;  // [max(kQT, kKT)][D]

  void resize(int64_t D) {
    kt.resize(D * kKT);
    vt.resize(D * kKT);
    score.resize(kQT * kKT);
    prob.resize(kQT * kKT);
    dprob.resize(kQT * kKT);
    acc_a.resize(std::max(kQT, kKT) * D);
    acc_b.resize(std::max(kQT, kKT) * D);
  }
};

// x[i] = exp(x[i]) for i < n (exp(-inf) = 0).
static void exp_inplace(float* x, int64_t n) {
#if defined(__AVX512F__)
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 m = simd::first_lanes(n - i);
    _mm512_mask_storeu_ps(x + i, m, simd::exp(_mm512_maskz_loadu_ps(m, x + i)));
  }
#else
  for (int64_t i = 0; i < n; ++i) x[i] = std::exp(x[i]);
#endif
}

// x[i] = cap * tanh(x[i] / cap)
static void softcap_inplace(float* x, int64_t n, float cap) {
#if defined(__AVX512F__)
  const __m512 inv = simd::splat(1.0f / cap), c = simd::splat(cap);
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 m = simd::first_lanes(n - i);
    __m512 y = simd::tanh(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
    _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(y, c));
  }
#else
  for (int64_t i = 0; i < n; ++i) x[i] = cap * std::tanh(x[i] / cap);
#endif
}

// t[d][j] = src[j * stride + d] for the n rows of a tile; rows n..kKT are zeros.
static void transpose_tile(const float* src, int64_t stride, int64_t n, int64_t D, float* t) {
  for (int64_t d = 0; d < D; ++d) {
    float* row = t + d * kKT;
    for (int64_t j = 0; j < n; ++j) row[j] = src[j * stride + d];
    std::fill(row + n, row + kKT, 0.0f);
  }
}

// c[i][0, kKT) = factor * sum_d a[i * lda + d] bt[d][0, kKT) for `rows` rows.
static void rows_times_tile(const float* a, int64_t lda, int64_t rows, const float* bt, int64_t D,
                            float factor, float* c) {
  for (int64_t i = 0; i < rows; ++i) {
    float acc[kKT] = {};
    const float* ai = a + i * lda;
    for (int64_t d = 0; d < D; ++d) {
      const float x = ai[d];
      const float* b = bt + d * kKT;
      for (int64_t j = 0; j < kKT; ++j) acc[j] += x * b[j];
    }
    for (int64_t j = 0; j < kKT; ++j) c[i * kKT + j] = acc[j] * factor;
  }
}

// y[0, D) += alpha * x[0, D)
static void axpy(float alpha, const float* x, float* y, int64_t D) {
  for (int64_t d = 0; d < D; ++d) y[d] += alpha * x[d];
}

// Scores of queries [t0, t0 + nq) of head h against the key tile at s0 (kt = its transpose):
// score = capped scores; prob = exp(score - lse) where visible, 0 elsewhere.
static void tile_probabilities(const Problem& pr, Scratch& w, int64_t b, int64_t h, int64_t t0,
                               int64_t nq, int64_t s0, int64_t nk) {
  const int64_t D = pr.s.head_dim;
  rows_times_tile(pr.q + pr.q_index(b, t0, h), pr.s.q_heads * D, nq, w.kt.data(), D, pr.scale,
                  w.score.data());
  if (pr.softcap > 0) softcap_inplace(w.score.data(), nq * kKT, pr.softcap);
  for (int64_t i = 0; i < nq; ++i) {
    const float lse = pr.lse[pr.row_index(b, h, t0 + i)];
    const int64_t qp = pr.q_offset + t0 + i;
    float* p = w.prob.data() + i * kKT;
    const float* sc = w.score.data() + i * kKT;
    for (int64_t j = 0; j < kKT; ++j)
      p[j] = j < nk && lse != INFINITY && pr.visible(b, qp, s0 + j) ? sc[j] - lse : -INFINITY;
    exp_inplace(p, kKT);
  }
}

// dprob = dS = P (dP - D_i) (softcap: times 1 - (score / cap)^2), with dP = dO . V^T (vt).
static void tile_score_gradient(const Problem& pr, Scratch& w, int64_t b, int64_t h, int64_t t0,
                                int64_t nq) {
  const int64_t D = pr.s.head_dim;
  rows_times_tile(pr.dout + pr.q_index(b, t0, h), pr.s.q_heads * D, nq, w.vt.data(), D, 1.0f,
                  w.dprob.data());
  const float inv_cap = pr.softcap > 0 ? 1.0f / pr.softcap : 0.0f;
  for (int64_t i = 0; i < nq; ++i) {
    const float delta = pr.delta[pr.row_index(b, h, t0 + i)];
    float* ds = w.dprob.data() + i * kKT;
    const float* p = w.prob.data() + i * kKT;
    const float* sc = w.score.data() + i * kKT;
    for (int64_t j = 0; j < kKT; ++j) {
      float g = p[j] * (ds[j] - delta);
      if (pr.softcap > 0) g *= 1.0f - (sc[j] * inv_cap) * (sc[j] * inv_cap);
      ds[j] = g;
    }
  }
}

// L_i over the visible keys of queries [t0, t0 + nq) (online max and sum), and D_i.
static void query_statistics(Problem& pr, Scratch& w, int64_t b, int64_t h, int64_t t0,
                             int64_t nq) {
  const int64_t D = pr.s.head_dim, hk = h / (pr.s.q_heads / pr.s.kv_heads);
  const int64_t qp0 = pr.q_offset + t0, last_key = qp0 + nq - 1;
  float m[kQT], l[kQT];
  std::fill(m, m + nq, -INFINITY);
  std::fill(l, l + nq, 0.0f);
  for (int64_t s0 = pr.first_key(qp0) / kKT * kKT; s0 <= last_key; s0 += kKT) {
    const int64_t nk = std::min(kKT, last_key - s0 + 1);
    transpose_tile(pr.k + pr.kv_index(b, s0, hk), pr.s.kv_heads * D, nk, D, w.kt.data());
    rows_times_tile(pr.q + pr.q_index(b, t0, h), pr.s.q_heads * D, nq, w.kt.data(), D, pr.scale,
                    w.score.data());
    if (pr.softcap > 0) softcap_inplace(w.score.data(), nq * kKT, pr.softcap);
    for (int64_t i = 0; i < nq; ++i) {
      const int64_t qp = qp0 + i;
      float* sc = w.score.data() + i * kKT;
      float tile_max = -INFINITY;
      for (int64_t j = 0; j < nk; ++j)
        if (pr.visible(b, qp, s0 + j)) tile_max = std::max(tile_max, sc[j]);
      if (tile_max == -INFINITY) continue;
      const float m_new = std::max(m[i], tile_max);
      for (int64_t j = 0; j < kKT; ++j)
        sc[j] = j < nk && pr.visible(b, qp, s0 + j) ? sc[j] - m_new : -INFINITY;
      exp_inplace(sc, kKT);
      float sum = 0;
      for (int64_t j = 0; j < kKT; ++j) sum += sc[j];
      l[i] = l[i] * std::exp(m[i] - m_new) + sum;
      m[i] = m_new;
    }
  }
  for (int64_t i = 0; i < nq; ++i) {
    const int64_t row = pr.row_index(b, h, t0 + i);
    pr.lse[row] = l[i] > 0 ? m[i] + std::log(l[i]) : INFINITY;
    const float* o = pr.out + pr.q_index(b, t0 + i, h);
    const float* d_o = pr.dout + pr.q_index(b, t0 + i, h);
    float delta = 0;
    for (int64_t d = 0; d < D; ++d) delta += o[d] * d_o[d];
    pr.delta[row] = delta;
  }
}

// Pass 1 unit: L_i, D_i and dQ of queries [t0, t0 + nq) of head h.
static void query_unit(Problem& pr, Scratch& w, int64_t b, int64_t h, int64_t t0, int64_t nq) {
  const int64_t D = pr.s.head_dim, hk = h / (pr.s.q_heads / pr.s.kv_heads);
  const int64_t kv_stride = pr.s.kv_heads * D;
  query_statistics(pr, w, b, h, t0, nq);
  float* dq = w.acc_a.data();
  std::fill(dq, dq + nq * D, 0.0f);
  const int64_t qp0 = pr.q_offset + t0, last_key = qp0 + nq - 1;
  for (int64_t s0 = pr.first_key(qp0) / kKT * kKT; s0 <= last_key; s0 += kKT) {
    const int64_t nk = std::min(kKT, last_key - s0 + 1);
    const float* k_tile = pr.k + pr.kv_index(b, s0, hk);
    transpose_tile(k_tile, kv_stride, nk, D, w.kt.data());
    transpose_tile(pr.v + pr.kv_index(b, s0, hk), kv_stride, nk, D, w.vt.data());
    tile_probabilities(pr, w, b, h, t0, nq, s0, nk);
    tile_score_gradient(pr, w, b, h, t0, nq);
    for (int64_t i = 0; i < nq; ++i)
      for (int64_t j = 0; j < nk; ++j) {
        const float ds = w.dprob[i * kKT + j];
        if (ds != 0.0f) axpy(ds, k_tile + j * kv_stride, dq + i * D, D);
      }
  }
  for (int64_t i = 0; i < nq; ++i) {
    float* out = pr.dq + pr.q_index(b, t0 + i, h);
    for (int64_t d = 0; d < D; ++d) out[d] = dq[i * D + d] * pr.scale;
  }
}

// Pass 2 unit: dK, dV of keys [s0, s0 + nk) of kv head hk.
static void key_unit(const Problem& pr, Scratch& w, int64_t b, int64_t hk, int64_t s0, int64_t nk) {
  const AttentionShape& s = pr.s;
  const int64_t D = s.head_dim, group = s.q_heads / s.kv_heads, kv_stride = s.kv_heads * D;
  transpose_tile(pr.k + pr.kv_index(b, s0, hk), kv_stride, nk, D, w.kt.data());
  transpose_tile(pr.v + pr.kv_index(b, s0, hk), kv_stride, nk, D, w.vt.data());
  float* dk = w.acc_a.data();
  float* dv = w.acc_b.data();
  std::fill(dk, dk + nk * D, 0.0f);
  std::fill(dv, dv + nk * D, 0.0f);
  // Queries that may see a key of the tile: qp >= s0 and, with a window, qp < s0 + nk - 1 + window.
  const int64_t t_lo = std::max<int64_t>(0, s0 - pr.q_offset);
  int64_t t_hi = s.q_len - 1;
  if (pr.window > 0) t_hi = std::min(t_hi, s0 + nk - 2 + pr.window - pr.q_offset);
  for (int64_t h = hk * group; h < (hk + 1) * group; ++h)
    for (int64_t t0 = t_lo; t0 <= t_hi; t0 += kQT) {
      const int64_t nq = std::min(kQT, t_hi - t0 + 1);
      tile_probabilities(pr, w, b, h, t0, nq, s0, nk);
      tile_score_gradient(pr, w, b, h, t0, nq);
      for (int64_t i = 0; i < nq; ++i) {
        const float* q_row = pr.q + pr.q_index(b, t0 + i, h);
        const float* do_row = pr.dout + pr.q_index(b, t0 + i, h);
        for (int64_t j = 0; j < nk; ++j) {
          const float p = w.prob[i * kKT + j], ds = w.dprob[i * kKT + j];
          if (p != 0.0f) axpy(p, do_row, dv + j * D, D);
          if (ds != 0.0f) axpy(ds, q_row, dk + j * D, D);
        }
      }
    }
  for (int64_t j = 0; j < nk; ++j) {
    float* dk_out = pr.dk + pr.kv_index(b, s0 + j, hk);
    float* dv_out = pr.dv + pr.kv_index(b, s0 + j, hk);
    for (int64_t d = 0; d < D; ++d) {
      dk_out[d] = dk[j * D + d] * pr.scale;
      dv_out[d] = dv[j * D + d];
    }
  }
}

// body(unit) for units [0, n) handed out through an atomic counter (each unit owns its output).
template <class Body>
static void for_units(int64_t n, const Body& body) {
  std::atomic<int64_t> next{0};
  parallel_for(ThreadPool::global().size(), [&](int64_t, int64_t) {
    for (int64_t u; (u = next.fetch_add(1)) < n;) body(u);
  });
}

static void run(Problem& pr) {
  const AttentionShape& s = pr.s;
  const int64_t q_tiles = (s.q_len + kQT - 1) / kQT, k_tiles = (s.kv_len + kKT - 1) / kKT;
  for_units(s.batch * s.q_heads * q_tiles, [&](int64_t u) {
    thread_local Scratch w;
    w.resize(s.head_dim);
    const int64_t tile = q_tiles - 1 - u % q_tiles;  // dearest (latest) tiles first
    const int64_t h = (u / q_tiles) % s.q_heads, b = u / (q_tiles * s.q_heads);
    query_unit(pr, w, b, h, tile * kQT, std::min(kQT, s.q_len - tile * kQT));
  });
  for_units(s.batch * s.kv_heads * k_tiles, [&](int64_t u) {
    thread_local Scratch w;
    w.resize(s.head_dim);
    const int64_t tile = u % k_tiles;  // earliest keys are seen by the most queries
    const int64_t hk = (u / k_tiles) % s.kv_heads, b = u / (k_tiles * s.kv_heads);
    key_unit(pr, w, b, hk, tile * kKT, std::min(kKT, s.kv_len - tile * kKT));
  });
  // Rows past kv_len hold no key: zero gradient.
  const int64_t row = s.kv_heads * s.head_dim;
  for (int64_t b = 0; b < s.batch; ++b) {
    std::fill(pr.dk + (b * s.kv_capacity + s.kv_len) * row, pr.dk + (b + 1) * s.kv_capacity * row,
              0.0f);
    std::fill(pr.dv + (b * s.kv_capacity + s.kv_len) * row, pr.dv + (b + 1) * s.kv_capacity * row,
              0.0f);
  }
}

}  // namespace attention_bwd

void attention_backward(const float* q, const float* k, const float* v, const uint8_t* key_valid,
                        const float* out, const float* dout, float* dq, float* dk, float* dv,
                        const AttentionShape& shape, float scale, int64_t window, float softcap) {
  check_attention_shape(shape);
  if (shape.batch == 0 || shape.q_heads == 0 || shape.head_dim == 0) return;
  attention_bwd::Problem pr{q,  k,  v,     out,   dout,   key_valid, dq,
                            dk, dv, shape, scale, window, softcap,   shape.kv_len - shape.q_len,
                            {}, {}};
  const size_t rows = size_t(shape.batch * shape.q_heads * shape.q_len);
  pr.lse.resize(rows);
  pr.delta.resize(rows);
  attention_bwd::run(pr);
}

}  // namespace zoft::cpu
