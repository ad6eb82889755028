// Backward of cpu::attention, flash-style: no T x T matrix. With scores s = q.k * scale (then
// softcap * tanh(s / softcap)), P = softmax(s) per query, O = P V and D_i = rowsum(dO_i * O_i):
//   dV_j = sum_i P_ij dO_i,   dP_ij = dO_i . V_j,   dS_ij = P_ij (dP_ij - D_i) (1 - (s_ij/cap)^2)
//   dQ_i = scale sum_j dS_ij K_j,   dK_j = scale sum_i dS_ij Q_i.
// P is recomputed tile by tile (P_ij = exp(s_ij - L_i), L_i the query's logsumexp).
//
// Two passes, each owning what it writes, so that no two threads ever add into the same
// gradient and the bits do not depend on scheduling:
//   1. query tiles (batch, query head, 64 queries): one sweep over the visible keys gives L_i
//      (online, as in the forward) and dQ; L_i and D_i are kept for pass 2.
//   2. key tiles (batch, kv head, 64 keys): for every query head of the group and every query
//      that may see the tile, recompute P and dS and sum dK, dV.
// The small products are register-tiled AVX-512 kernels (6 rows x 64 lanes, as in the forward),
// with plain loops in the base copy; exp / tanh use simd.h in the avx512 copy (the file is
// compiled once per instruction set, op_kernels.h).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "backend/cpu/key_tile.h"
#include "backend/cpu/op_kernels.h"
#include "backend/cpu/simd.h"
#include "core/error.h"
#include "core/thread_pool.h"

#if !defined(ZOFT_OPS_ISA)
#error "attention_backward.cc is compiled once per instruction set (CMakeLists.txt)"
#endif

namespace zoft::cpu::detail::ZOFT_OPS_ISA {
namespace attention_bwd {
// Internal linkage, for the reason in tools/check_isa_objects.py.
namespace {

constexpr int64_t kQT = 64;             // queries per tile
constexpr int64_t kKT = kKeyTileWidth;  // keys per tile
// A packed panel: the 64 rows of a tile in slices of 64 dims, [ceil(D / 64)][64 rows][64 dims],
// zeros past the rows and dims that exist.
constexpr int64_t kPanelRows = 64, kPanelDims = 64;

struct Problem {
  const float *q, *k, *v, *out, *dout;
  const uint8_t* key_valid;
  float *dq, *dk, *dv;
  AttentionShape s;
  float scale;
  int64_t window;
  float softcap;
  int64_t q_offset;
  std::vector<float> lse{}, delta{};  // [B, Hq, T]: logsumexp (+inf: no key seen), rowsum(dO * O)
  // K and V transposed once per call, tile by tile: [B, Hkv, k_tiles, D, kKT] (zeros past
  // kv_len), so that the score products read keys in the lanes from one contiguous block.
  std::vector<float> kt{}, vt{};
  // K (per key tile) and Q, dO (per query tile) as packed panels, for the accumulating products.
  std::vector<float> k_panels{}, q_panels{}, do_panels{};
  int64_t k_tiles = 0, q_tiles = 0;

  int64_t panel_floats() const {
    return (s.head_dim + kPanelDims - 1) / kPanelDims * kPanelRows * kPanelDims;
  }
  const float* k_panel(int64_t b, int64_t hk, int64_t s0) const {
    return k_panels.data() + ((b * s.kv_heads + hk) * k_tiles + s0 / kKT) * panel_floats();
  }
  int64_t q_panel_index(int64_t b, int64_t h, int64_t t0) const {
    return ((b * s.q_heads + h) * q_tiles + t0 / kQT) * panel_floats();
  }

  int64_t transposed_index(int64_t b, int64_t hk, int64_t s0) const {
    return ((b * s.kv_heads + hk) * k_tiles + s0 / kKT) * s.head_dim * kKT;
  }
  const float* k_transposed(int64_t b, int64_t hk, int64_t s0) const {
    return kt.data() + transposed_index(b, hk, s0);
  }
  const float* v_transposed(int64_t b, int64_t hk, int64_t s0) const {
    return vt.data() + transposed_index(b, hk, s0);
  }

  int64_t q_index(int64_t b, int64_t t, int64_t h) const {
    return ((b * s.q_len + t) * s.q_heads + h) * s.head_dim;
  }
  int64_t kv_index(int64_t b, int64_t key, int64_t hk) const {
    return ((b * s.kv_capacity + key) * s.kv_heads + hk) * s.head_dim;
  }
  int64_t row_index(int64_t b, int64_t h, int64_t t) const {
    return (b * s.q_heads + h) * s.q_len + t;
  }
  // The first key query position qp may see by position (causal and window).
  int64_t first_key(int64_t qp) const {
    return window > 0 ? std::max<int64_t>(0, qp - window + 1) : 0;
  }
};

// Per-thread buffers, reused between units and calls.
struct Scratch {
  std::vector<float> score, prob;   // [kQT][kKT] capped scores, then P
  std::vector<float> dprob;         // [kQT][kKT] dP, then dS
  std::vector<float> acc_a, acc_b;  // [max(kQT, kKT)][D]

  void resize(int64_t D) {
    score.resize(kQT * kKT);
    prob.resize(kQT * kKT);
    dprob.resize(kQT * kKT);
    acc_a.resize(std::max(kQT, kKT) * D);
    acc_b.resize(std::max(kQT, kKT) * D);
  }
};

// Bit j set when key s0 + j (j < nk) is not padding.
static uint64_t tile_valid_bits(const Problem& pr, int64_t b, int64_t s0, int64_t nk) {
  uint64_t bits = 0;
  for (int64_t j = 0; j < nk; ++j)
    if (!pr.key_valid || pr.key_valid[b * pr.s.kv_len + s0 + j]) bits |= uint64_t(1) << j;
  return bits;
}

// Bit j set when query position qp sees key s0 + j: the causal / window range, and `valid`.
static uint64_t visible_bits(const Problem& pr, int64_t qp, int64_t s0, int64_t nk,
                             uint64_t valid) {
  const int64_t lo = std::max(pr.first_key(qp), s0) - s0, hi = std::min(qp, s0 + nk - 1) - s0;
  if (hi < lo) return 0;
  const uint64_t up_to_hi = hi >= 63 ? ~uint64_t(0) : (uint64_t(1) << (hi + 1)) - 1;
  return up_to_hi & (~uint64_t(0) << lo) & valid;
}

// max of x[j] over the bits set (-inf when none).
static float masked_max(const float* x, uint64_t bits) {
#if defined(__AVX512F__)
  __m512 best = simd::splat(-INFINITY);
  for (int v = 0; v < 4; ++v)
    best = _mm512_mask_max_ps(best, __mmask16(bits >> (16 * v)), best, _mm512_loadu_ps(x + 16 * v));
  return simd::reduce_max(best);
#else
  float best = -INFINITY;
  for (int64_t j = 0; j < kKT; ++j)
    if (bits >> j & 1) best = std::max(best, x[j]);
  return best;
#endif
}

// out[j] = exp(x[j] - shift) where bit j is set, 0 elsewhere (out may be x); returns the sum.
static float masked_exp(const float* x, uint64_t bits, float shift, float* out) {
#if defined(__AVX512F__)
  __m512 sum = _mm512_setzero_ps();
  for (int v = 0; v < 4; ++v) {
    __mmask16 m = __mmask16(bits >> (16 * v));
    __m512 e = simd::exp(_mm512_sub_ps(_mm512_loadu_ps(x + 16 * v), simd::splat(shift)));
    e = _mm512_maskz_mov_ps(m, e);
    _mm512_storeu_ps(out + 16 * v, e);
    sum = _mm512_add_ps(sum, e);
  }
  return simd::reduce_add(sum);
#else
  float sum = 0;
  for (int64_t j = 0; j < kKT; ++j) {
    out[j] = bits >> j & 1 ? std::exp(x[j] - shift) : 0.0f;
    sum += out[j];
  }
  return sum;
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

// ---- the two small products, register-tiled on AVX-512 -------------------------------------
//   rows_times_tile: c[i][0, kKT) = factor * sum_d a[i][d] bt[d][0, kKT)  (Q K^T, dO V^T; bt
//                    rows ldb apart)
//   accumulate:      acc[r][0, D) += sum_t coef(r, t) src[t][0, D)          (dS K, P^T dO, dS^T Q)
// with coef(r, t) = coef[r * coef_rs + t * coef_cs], so that one kernel serves P and P^T, and
// src a packed panel of 64 rows (pack_panel): every 64-dim slice the kernel sweeps is one
// contiguous 16 KiB block (rows of q / dO are Hq*D floats apart, a power of two that would
// crowd a few cache sets).

#if defined(__AVX512F__)
constexpr int kRowBlock = 6;  // rows per register tile: 6 x 4 accumulators

// acc[r][d0, d0 + 16 NV) for ROWS rows; only the last vector may be partial.
template <int ROWS, int NV>
static void accumulate_kernel(const float* coef, int64_t coef_rs, int64_t coef_cs, const float* src,
                              int64_t n, float* acc, int64_t D, int64_t d0) {
  __mmask16 mask[NV];
#pragma GCC unroll 4
  for (int i = 0; i < NV; ++i) mask[i] = i < NV - 1 ? 0xffff : simd::first_lanes(D - d0 - 16 * i);
  __m512 a[ROWS][NV];
#pragma GCC unroll 8
  for (int r = 0; r < ROWS; ++r)
#pragma GCC unroll 4
    for (int i = 0; i < NV; ++i)
      a[r][i] = _mm512_maskz_loadu_ps(mask[i], acc + r * D + d0 + 16 * i);
  for (int64_t t = 0; t < n; ++t) {
    __m512 x[NV];
#pragma GCC unroll 4
    for (int i = 0; i < NV; ++i) x[i] = _mm512_loadu_ps(src + t * kPanelDims + 16 * i);
#pragma GCC unroll 8
    for (int r = 0; r < ROWS; ++r) {
      __m512 w = _mm512_set1_ps(coef[r * coef_rs + t * coef_cs]);
#pragma GCC unroll 4
      for (int i = 0; i < NV; ++i) a[r][i] = _mm512_fmadd_ps(w, x[i], a[r][i]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < ROWS; ++r)
#pragma GCC unroll 4
    for (int i = 0; i < NV; ++i) _mm512_mask_storeu_ps(acc + r * D + d0 + 16 * i, mask[i], a[r][i]);
}

template <int ROWS>
static void accumulate_rows(int nv, const float* coef, int64_t coef_rs, int64_t coef_cs,
                            const float* src, int64_t n, float* acc, int64_t D, int64_t d0) {
  switch (nv) {
    case 1:
      return accumulate_kernel<ROWS, 1>(coef, coef_rs, coef_cs, src, n, acc, D, d0);
    case 2:
      return accumulate_kernel<ROWS, 2>(coef, coef_rs, coef_cs, src, n, acc, D, d0);
    case 3:
      return accumulate_kernel<ROWS, 3>(coef, coef_rs, coef_cs, src, n, acc, D, d0);
    default:
      return accumulate_kernel<ROWS, 4>(coef, coef_rs, coef_cs, src, n, acc, D, d0);
  }
}

static void accumulate(const float* coef, int64_t coef_rs, int64_t coef_cs, const float* panel,
                       int64_t n, float* acc, int64_t rows, int64_t D) {
  for (int64_t r = 0; r < rows; r += kRowBlock) {
    const float* cr = coef + r * coef_rs;
    float* ar = acc + r * D;
    for (int64_t d0 = 0; d0 < D; d0 += kPanelDims) {
      const int nv = int(std::min<int64_t>(4, (D - d0 + 15) / 16));
      const float* src = panel + d0 * kPanelRows;
      switch (std::min<int64_t>(kRowBlock, rows - r)) {
        case 1:
          accumulate_rows<1>(nv, cr, coef_rs, coef_cs, src, n, ar, D, d0);
          break;
        case 2:
          accumulate_rows<2>(nv, cr, coef_rs, coef_cs, src, n, ar, D, d0);
          break;
        case 3:
          accumulate_rows<3>(nv, cr, coef_rs, coef_cs, src, n, ar, D, d0);
          break;
        case 4:
          accumulate_rows<4>(nv, cr, coef_rs, coef_cs, src, n, ar, D, d0);
          break;
        case 5:
          accumulate_rows<5>(nv, cr, coef_rs, coef_cs, src, n, ar, D, d0);
          break;
        default:
          accumulate_rows<6>(nv, cr, coef_rs, coef_cs, src, n, ar, D, d0);
          break;
      }
    }
  }
}

#else  // base copy

static void accumulate(const float* coef, int64_t coef_rs, int64_t coef_cs, const float* panel,
                       int64_t n, float* acc, int64_t rows, int64_t D) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t t = 0; t < n; ++t) {
      const float w = coef[r * coef_rs + t * coef_cs];
      if (w == 0.0f) continue;
      for (int64_t d = 0; d < D; ++d) {
        const int64_t slice = d / kPanelDims, lane = d % kPanelDims;
        acc[r * D + d] += w * panel[(slice * kPanelRows + t) * kPanelDims + lane];
      }
    }
}

#endif

// score = the capped scores of queries [t0, t0 + nq) of head h against the key tile at s0.
static void tile_scores(const Problem& pr, Scratch& w, int64_t b, int64_t h, int64_t t0, int64_t nq,
                        int64_t s0) {
  const int64_t D = pr.s.head_dim, hk = h / (pr.s.q_heads / pr.s.kv_heads);
  rows_times_key_tile(pr.q + pr.q_index(b, t0, h), pr.s.q_heads * D, nq, pr.k_transposed(b, hk, s0),
                      kKT, D, pr.scale, w.score.data());
  if (pr.softcap > 0) softcap_inplace(w.score.data(), nq * kKT, pr.softcap);
}

// score as tile_scores; prob = P = exp(score - L_i) where visible, 0 elsewhere.
static void tile_probabilities(const Problem& pr, Scratch& w, int64_t b, int64_t h, int64_t t0,
                               int64_t nq, int64_t s0, int64_t nk, uint64_t valid) {
  tile_scores(pr, w, b, h, t0, nq, s0);
  for (int64_t i = 0; i < nq; ++i) {
    const float lse = pr.lse[pr.row_index(b, h, t0 + i)];
    const int64_t qp = pr.q_offset + t0 + i;
    const uint64_t bits = lse == INFINITY ? 0 : visible_bits(pr, qp, s0, nk, valid);
    masked_exp(w.score.data() + i * kKT, bits, lse, w.prob.data() + i * kKT);
  }
}

// dprob = dS = P (dP - D_i) (softcap: times 1 - (score / cap)^2), with dP = dO . V^T (vt).
static void tile_score_gradient(const Problem& pr, Scratch& w, int64_t b, int64_t h, int64_t t0,
                                int64_t nq, int64_t s0) {
  const int64_t D = pr.s.head_dim, hk = h / (pr.s.q_heads / pr.s.kv_heads);
  rows_times_key_tile(pr.dout + pr.q_index(b, t0, h), pr.s.q_heads * D, nq,
                      pr.v_transposed(b, hk, s0), kKT, D, 1.0f, w.dprob.data());
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

// D_i = rowsum(dO * O) of queries [t0, t0 + nq) of head h.
static void query_deltas(Problem& pr, int64_t b, int64_t h, int64_t t0, int64_t nq) {
  for (int64_t i = 0; i < nq; ++i) {
    const float* o = pr.out + pr.q_index(b, t0 + i, h);
    const float* d_o = pr.dout + pr.q_index(b, t0 + i, h);
    float delta = 0;
    for (int64_t d = 0; d < pr.s.head_dim; ++d) delta += o[d] * d_o[d];
    pr.delta[pr.row_index(b, h, t0 + i)] = delta;
  }
}

// Pass 1 unit: D_i, L_i and dQ of queries [t0, t0 + nq) of head h in one sweep over the keys.
// L_i is not known until the sweep ends, so P is taken relative to the running maximum m_i, as
// in the forward: prob = exp(s - m_i), dQ_i accumulates unnormalised (rescaled by exp(m_old -
// m_new) when m_i grows) and is divided by l_i = sum exp(s - m_i) at the end.
static void query_unit(Problem& pr, Scratch& w, int64_t b, int64_t h, int64_t t0, int64_t nq) {
  const int64_t D = pr.s.head_dim, hk = h / (pr.s.q_heads / pr.s.kv_heads);
  query_deltas(pr, b, h, t0, nq);
  float m[kQT], l[kQT];
  std::fill(m, m + nq, -INFINITY);
  std::fill(l, l + nq, 0.0f);
  float* dq = w.acc_a.data();
  std::fill(dq, dq + nq * D, 0.0f);
  const int64_t qp0 = pr.q_offset + t0, last_key = qp0 + nq - 1;
  for (int64_t s0 = pr.first_key(qp0) / kKT * kKT; s0 <= last_key; s0 += kKT) {
    const int64_t nk = std::min(kKT, last_key - s0 + 1);
    const uint64_t valid = tile_valid_bits(pr, b, s0, nk);
    if (valid == 0) continue;  // all padding
    tile_scores(pr, w, b, h, t0, nq, s0);
    for (int64_t i = 0; i < nq; ++i) {
      float* p = w.prob.data() + i * kKT;
      const float* sc = w.score.data() + i * kKT;
      const uint64_t bits = visible_bits(pr, qp0 + i, s0, nk, valid);
      if (bits == 0) {
        std::fill(p, p + kKT, 0.0f);
        continue;
      }
      const float m_new = std::max(m[i], masked_max(sc, bits));
      const float alpha = std::exp(m[i] - m_new);  // 0 on the first visible tile
      if (alpha != 1.0f)
        for (int64_t d = 0; d < D; ++d) dq[i * D + d] *= alpha;
      l[i] = l[i] * alpha + masked_exp(sc, bits, m_new, p);
      m[i] = m_new;
    }
    tile_score_gradient(pr, w, b, h, t0, nq, s0);
    accumulate(w.dprob.data(), kKT, 1, pr.k_panel(b, hk, s0), nk, dq, nq, D);
  }
  for (int64_t i = 0; i < nq; ++i) {
    pr.lse[pr.row_index(b, h, t0 + i)] = l[i] > 0 ? m[i] + std::log(l[i]) : INFINITY;
    const float factor = l[i] > 0 ? pr.scale / l[i] : 0.0f;  // no key seen: zeros
    float* out = pr.dq + pr.q_index(b, t0 + i, h);
    for (int64_t d = 0; d < D; ++d) out[d] = dq[i * D + d] * factor;
  }
}

// Pass 2 unit: dK, dV of keys [s0, s0 + nk) of kv head hk.
static void key_unit(const Problem& pr, Scratch& w, int64_t b, int64_t hk, int64_t s0, int64_t nk) {
  const AttentionShape& s = pr.s;
  const int64_t D = s.head_dim, group = s.q_heads / s.kv_heads;
  float* dk = w.acc_a.data();
  float* dv = w.acc_b.data();
  std::fill(dk, dk + nk * D, 0.0f);
  std::fill(dv, dv + nk * D, 0.0f);
  const uint64_t valid = tile_valid_bits(pr, b, s0, nk);
  // Queries that may see a key of the tile: qp >= s0 and, with a window, qp < s0 + nk - 1 + window;
  // swept in whole query tiles (the packed panels), rows outside see nothing of the tile.
  const int64_t t_lo = std::max<int64_t>(0, s0 - pr.q_offset) / kQT * kQT;
  int64_t t_hi = valid == 0 ? -1 : s.q_len - 1;  // all padding: no query
  if (pr.window > 0) t_hi = std::min(t_hi, s0 + nk - 2 + pr.window - pr.q_offset);
  for (int64_t h = hk * group; h < (hk + 1) * group; ++h)
    for (int64_t t0 = t_lo; t0 <= t_hi; t0 += kQT) {
      const int64_t nq = std::min(kQT, t_hi - t0 + 1);
      tile_probabilities(pr, w, b, h, t0, nq, s0, nk, valid);
      tile_score_gradient(pr, w, b, h, t0, nq, s0);
      const int64_t panel = pr.q_panel_index(b, h, t0);
      accumulate(w.prob.data(), 1, kKT, pr.do_panels.data() + panel, nq, dv, nk, D);
      accumulate(w.dprob.data(), 1, kKT, pr.q_panels.data() + panel, nq, dk, nk, D);
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

// dst[D][kKT] = the n rows of src (stride apart) transposed; zeros past n.
static void pack_transposed(const float* src, int64_t stride, int64_t n, int64_t D, float* dst) {
  for (int64_t d = 0; d < D; ++d) {
    for (int64_t j = 0; j < n; ++j) dst[d * kKT + j] = src[j * stride + d];
    std::fill(dst + d * kKT + n, dst + (d + 1) * kKT, 0.0f);
  }
}

// dst = the n rows of src (stride apart) as a packed panel (see kPanelRows).
static void pack_panel(const float* src, int64_t stride, int64_t n, int64_t D, float* dst) {
  for (int64_t d0 = 0; d0 < D; d0 += kPanelDims) {
    const int64_t dims = std::min(kPanelDims, D - d0);
    for (int64_t r = 0; r < kPanelRows; ++r) {
      float* out = dst + (d0 / kPanelDims * kPanelRows + r) * kPanelDims;
      if (r < n) std::copy(src + r * stride + d0, src + r * stride + d0 + dims, out);
      std::fill(out + (r < n ? dims : 0), out + kPanelDims, 0.0f);
    }
  }
}

// The per-call layouts of K, V, Q and dO (Problem), tile by tile over the pool.
static void pack_operands(Problem& pr) {
  const AttentionShape& s = pr.s;
  const int64_t D = s.head_dim, kv_stride = s.kv_heads * D, q_stride = s.q_heads * D;
  const int64_t kv_tiles = s.batch * s.kv_heads * pr.k_tiles;
  const int64_t q_tiles = s.batch * s.q_heads * pr.q_tiles;
  pr.kt.resize(size_t(kv_tiles * D * kKT));
  pr.vt.resize(pr.kt.size());
  pr.k_panels.resize(size_t(kv_tiles * pr.panel_floats()));
  pr.q_panels.resize(size_t(q_tiles * pr.panel_floats()));
  pr.do_panels.resize(pr.q_panels.size());
  for_units(kv_tiles + q_tiles, [&](int64_t u) {
    if (u < kv_tiles) {
      const int64_t s0 = u % pr.k_tiles * kKT, hk = (u / pr.k_tiles) % s.kv_heads,
                    b = u / (pr.k_tiles * s.kv_heads);
      const int64_t nk = std::min(kKT, s.kv_len - s0);
      const int64_t at = pr.kv_index(b, s0, hk);
      pack_transposed(pr.k + at, kv_stride, nk, D, pr.kt.data() + pr.transposed_index(b, hk, s0));
      pack_transposed(pr.v + at, kv_stride, nk, D, pr.vt.data() + pr.transposed_index(b, hk, s0));
      pack_panel(pr.k + at, kv_stride, nk, D, pr.k_panels.data() + (u * pr.panel_floats()));
    } else {
      u -= kv_tiles;
      const int64_t t0 = u % pr.q_tiles * kQT, h = (u / pr.q_tiles) % s.q_heads,
                    b = u / (pr.q_tiles * s.q_heads);
      const int64_t nq = std::min(kQT, s.q_len - t0), at = pr.q_index(b, t0, h);
      pack_panel(pr.q + at, q_stride, nq, D, pr.q_panels.data() + pr.q_panel_index(b, h, t0));
      pack_panel(pr.dout + at, q_stride, nq, D, pr.do_panels.data() + pr.q_panel_index(b, h, t0));
    }
  });
}

static void run(Problem& pr) {
  const AttentionShape& s = pr.s;
  const int64_t q_tiles = (s.q_len + kQT - 1) / kQT, k_tiles = (s.kv_len + kKT - 1) / kKT;
  pr.k_tiles = k_tiles;
  pr.q_tiles = q_tiles;
  pack_operands(pr);
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

}  // namespace
}  // namespace attention_bwd

void attention_backward(const float* q, const float* k, const float* v, const uint8_t* key_valid,
                        const float* out, const float* dout, float* dq, float* dk, float* dv,
                        const AttentionShape& shape, float scale, int64_t window, float softcap) {
  check_attention_shape(shape);
  if (shape.batch == 0 || shape.q_heads == 0 || shape.head_dim == 0) return;
  attention_bwd::Problem pr{.q = q,
                            .k = k,
                            .v = v,
                            .out = out,
                            .dout = dout,
                            .key_valid = key_valid,
                            .dq = dq,
                            .dk = dk,
                            .dv = dv,
                            .s = shape,
                            .scale = scale,
                            .window = window,
                            .softcap = softcap,
                            .q_offset = shape.kv_len - shape.q_len};
  const size_t rows = size_t(shape.batch * shape.q_heads * shape.q_len);
  pr.lse.resize(rows);
  pr.delta.resize(rows);
  attention_bwd::run(pr);
}

}  // namespace zoft::cpu::detail::ZOFT_OPS_ISA
