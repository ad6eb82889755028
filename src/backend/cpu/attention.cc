// Flash-style causal attention: no T x T matrix. A work unit is one (batch, query head, tile of
// 64 queries); it sweeps the keys it may see in tiles of 64 and keeps, per query, the running
// maximum m, the running sum l of exp(score - m) and the running sum acc of exp(score - m) * v.
// When a tile raises m, l and acc are rescaled by exp(m_old - m_new) first (online softmax).
//
// Per key tile, both products are small GEMMs with register tiles of 6 queries x 64 lanes:
//   scores = q_tile . K_tile^T   (keys in the vector lanes: K_tile is transposed once per tile)
//   acc   += p . V_tile          (head dims in the vector lanes: V rows are used in place)
// Units are handed out through an atomic counter, the ones with most keys first, since causal
// masking makes late query tiles several times dearer than early ones.
//
// Compiled once per instruction set (op_kernels.h): the register-tiled code below is the avx512
// copy; the base copy runs the plain loop at the end.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "backend/cpu/attention_problem.h"
#include "backend/cpu/key_tile.h"
#include "backend/cpu/op_kernels.h"
#include "backend/cpu/simd.h"
#include "core/error.h"
#include "core/thread_pool.h"

#if !defined(ZOFT_OPS_ISA)
#error "attention.cc is compiled once per instruction set (CMakeLists.txt, zoft_ops_<copy>)"
#endif

namespace zoft::cpu::detail::ZOFT_OPS_ISA {
// Internal linkage, for the reason in tools/check_isa_objects.py.
namespace {

using detail::attention::Problem;

constexpr int64_t kQueryTile = 128;
constexpr int64_t kKeyTile = kKeyTileWidth;

#if defined(__AVX512F__)

// Per-thread buffers of one work unit, reused between units and calls.
struct Tiles {
  std::vector<float> q;            // [kQueryTile][D] queries times scale
  std::vector<float> kt;           // [D][kKeyTile]   key tile, transposed
  std::vector<float> p;            // [kQueryTile][kKeyTile] scores, then exp(score - m)
  std::vector<float> acc;          // [kQueryTile][D]
  std::vector<float> m, l, alpha;  // [kQueryTile] running max, running sum, this tile's rescale

  void resize(int64_t D) {
    q.resize(kQueryTile * D);
    kt.resize(D * kKeyTile);
    p.resize(kQueryTile * kKeyTile);
    acc.resize(kQueryTile * D);
    m.resize(kQueryTile);
    l.resize(kQueryTile);
    alpha.resize(kQueryTile);
  }
};

// acc[r][d0, d0 + 16 NV) = acc * alpha[r] + sum_j p[r][j] v_j[d0, ...) for ROWS queries;
// v_j = v + j * v_stride, the last of the NV vectors covers `last` lanes.
template <int ROWS, int NV>
void pv_kernel(const float* p, const float* alpha, const float* v, int64_t v_stride, int64_t keys,
               float* acc, int64_t D, int64_t d0) {
  __mmask16 mask[NV];  // only the last vector may be partial
#pragma GCC unroll 4
  for (int i = 0; i < NV; ++i) mask[i] = i < NV - 1 ? 0xffff : simd::first_lanes(D - d0 - 16 * i);
  // Every loop over r and i is unrolled so that a[][] lives in registers.
  __m512 a[ROWS][NV];
#pragma GCC unroll 8
  for (int r = 0; r < ROWS; ++r) {
    __m512 scale = _mm512_set1_ps(alpha[r]);
#pragma GCC unroll 4
    for (int i = 0; i < NV; ++i)
      a[r][i] = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask[i], acc + r * D + d0 + 16 * i), scale);
  }
  for (int64_t j = 0; j < keys; ++j) {
    __m512 vv[NV];
#pragma GCC unroll 4
    for (int i = 0; i < NV; ++i)
      vv[i] = _mm512_maskz_loadu_ps(mask[i], v + j * v_stride + d0 + 16 * i);
#pragma GCC unroll 8
    for (int r = 0; r < ROWS; ++r) {
      __m512 pr = _mm512_set1_ps(p[r * kKeyTile + j]);
#pragma GCC unroll 4
      for (int i = 0; i < NV; ++i) a[r][i] = _mm512_fmadd_ps(pr, vv[i], a[r][i]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < ROWS; ++r)
#pragma GCC unroll 4
    for (int i = 0; i < NV; ++i) _mm512_mask_storeu_ps(acc + r * D + d0 + 16 * i, mask[i], a[r][i]);
}

template <int ROWS>
void pv_rows(int nv, const float* p, const float* alpha, const float* v, int64_t v_stride,
             int64_t keys, float* acc, int64_t D, int64_t d0) {
  switch (nv) {
    case 1:
      return pv_kernel<ROWS, 1>(p, alpha, v, v_stride, keys, acc, D, d0);
    case 2:
      return pv_kernel<ROWS, 2>(p, alpha, v, v_stride, keys, acc, D, d0);
    case 3:
      return pv_kernel<ROWS, 3>(p, alpha, v, v_stride, keys, acc, D, d0);
    default:
      return pv_kernel<ROWS, 4>(p, alpha, v, v_stride, keys, acc, D, d0);
  }
}

constexpr int kRows = 6;  // queries per register tile: 6 x 4 accumulators

void pv_block(int rows, int nv, const float* p, const float* alpha, const float* v,
              int64_t v_stride, int64_t keys, float* acc, int64_t D, int64_t d0) {
  switch (rows) {
    case 1:
      return pv_rows<1>(nv, p, alpha, v, v_stride, keys, acc, D, d0);
    case 2:
      return pv_rows<2>(nv, p, alpha, v, v_stride, keys, acc, D, d0);
    case 3:
      return pv_rows<3>(nv, p, alpha, v, v_stride, keys, acc, D, d0);
    case 4:
      return pv_rows<4>(nv, p, alpha, v, v_stride, keys, acc, D, d0);
    case 5:
      return pv_rows<5>(nv, p, alpha, v, v_stride, keys, acc, D, d0);
    default:
      return pv_rows<6>(nv, p, alpha, v, v_stride, keys, acc, D, d0);
  }
}

// kt[d][j] = k_j[d] for the `keys` keys of the tile; missing keys are zeros.
void transpose_keys(const float* k, int64_t k_stride, int64_t keys, int64_t D, float* kt) {
  for (int64_t j0 = 0; j0 < kKeyTile; j0 += 16) {
    for (int64_t d0 = 0; d0 < D; d0 += 16) {
      __mmask16 dims = simd::first_lanes(D - d0);
      __m512i r[16];
      for (int64_t i = 0; i < 16; ++i)
        r[i] = j0 + i < keys ? _mm512_maskz_loadu_epi32(dims, k + (j0 + i) * k_stride + d0)
                             : _mm512_setzero_si512();
      simd::transpose16x16(r);
      for (int64_t i = 0; i < 16 && d0 + i < D; ++i)
        _mm512_storeu_si512(kt + (d0 + i) * kKeyTile + j0, r[i]);
    }
  }
}

// Turns row r's scores into exp(score - m_new) in place and updates m, l, alpha.
// `valid` has bit j set when key s0 + j exists and is not padding.
void softmax_row(const Problem& pr, float* p, int64_t qp, int64_t s0, uint64_t valid, float& m,
                 float& l, float& alpha) {
  const int64_t lo = pr.first_key(qp) - s0, hi = qp - s0;  // visible by position, tile-relative
  __mmask16 mask[4];
  __m512 x[4];
  __m512 best = simd::splat(-INFINITY);
  for (int v = 0; v < 4; ++v) {
    mask[v] = simd::lane_range(lo - 16 * v, hi - 16 * v) & __mmask16(valid >> (16 * v));
    x[v] = _mm512_loadu_ps(p + 16 * v);
    if (pr.softcap > 0)
      x[v] = _mm512_mul_ps(simd::tanh(_mm512_mul_ps(x[v], simd::splat(1.0f / pr.softcap))),
                           simd::splat(pr.softcap));
    best = _mm512_mask_max_ps(best, mask[v], best, x[v]);
  }
  const float tile_max = simd::reduce_max(best);
  if (tile_max == -INFINITY) {  // this query sees no key of the tile
    for (int v = 0; v < 4; ++v) _mm512_storeu_ps(p + 16 * v, _mm512_setzero_ps());
    alpha = 1.0f;
    return;
  }
  const float m_new = std::max(m, tile_max);
  __m512 sum = _mm512_setzero_ps();
  for (int v = 0; v < 4; ++v) {
    __m512 e = _mm512_maskz_mov_ps(mask[v], simd::exp(_mm512_sub_ps(x[v], simd::splat(m_new))));
    _mm512_storeu_ps(p + 16 * v, e);
    sum = _mm512_add_ps(sum, e);
  }
  alpha = std::exp(m - m_new);  // 0 for the first tile (m = -inf)
  l = l * alpha + simd::reduce_add(sum);
  m = m_new;
}

void run_unit(const Problem& pr, Tiles& w, int64_t b, int64_t h, int64_t t0, int64_t nq) {
  const int64_t D = pr.s.head_dim;
  const int64_t hk = h / (pr.s.q_heads / pr.s.kv_heads);
  const int64_t kv_stride = pr.s.kv_heads * D;
  for (int64_t t = 0; t < nq; ++t)
    for (int64_t d = 0; d < D; ++d) w.q[t * D + d] = pr.q[pr.q_index(b, t0 + t, h) + d] * pr.scale;
  std::fill(w.acc.begin(), w.acc.begin() + nq * D, 0.0f);
  std::fill(w.m.begin(), w.m.end(), -INFINITY);
  std::fill(w.l.begin(), w.l.end(), 0.0f);

  const int64_t qp0 = pr.q_offset + t0;
  const int64_t last_key = qp0 + nq - 1;  // < kv_len
  for (int64_t s0 = pr.first_key(qp0); s0 <= last_key; s0 += kKeyTile) {
    const int64_t keys = std::min(kKeyTile, last_key - s0 + 1);
    uint64_t valid = 0;
    for (int64_t j = 0; j < keys; ++j) valid |= uint64_t(pr.valid(b, s0 + j)) << j;
    if (valid == 0) continue;  // all padding
    const float* k_tile = pr.k + pr.kv_index(b, s0, hk);
    const float* v_tile = pr.v + pr.kv_index(b, s0, hk);
    transpose_keys(k_tile, kv_stride, keys, D, w.kt.data());
    for (int64_t r = 0; r < nq; r += kRows) {
      int rows = int(std::min<int64_t>(kRows, nq - r));
      bool sees_tile = qp0 + r + rows - 1 >= s0 && pr.first_key(qp0 + r) < s0 + keys;
      if (sees_tile)  // else softmax_row finds no visible key and zeroes the rows
        rows_times_key_tile(w.q.data() + r * D, D, rows, w.kt.data(), kKeyTile, D, 1.0f,
                            w.p.data() + r * kKeyTile);
    }
    for (int64_t r = 0; r < nq; ++r)
      softmax_row(pr, w.p.data() + r * kKeyTile, qp0 + r, s0, valid, w.m[r], w.l[r], w.alpha[r]);
    for (int64_t r = 0; r < nq; r += kRows) {
      int rows = int(std::min<int64_t>(kRows, nq - r));
      // Keys [j0, j1) of the tile are the only ones these rows may see (the others have p = 0):
      // this halves the work on the diagonal tile and skips what a window has left behind.
      int64_t j0 = std::clamp<int64_t>(pr.first_key(qp0 + r) - s0, 0, keys);
      int64_t j1 = std::clamp<int64_t>(qp0 + r + rows - s0, j0, keys);
      for (int64_t d0 = 0; d0 < D; d0 += 64)
        pv_block(rows, int(std::min<int64_t>(4, (D - d0 + 15) / 16)),
                 w.p.data() + r * kKeyTile + j0, w.alpha.data() + r, v_tile + j0 * kv_stride,
                 kv_stride, j1 - j0, w.acc.data() + r * D, D, d0);
    }
  }
  for (int64_t t = 0; t < nq; ++t) {
    float* out = pr.out + pr.q_index(b, t0 + t, h);
    const float inv = w.l[t] > 0 ? 1.0f / w.l[t] : 0.0f;  // no key seen: zeros
    for (int64_t d = 0; d < D; ++d) out[d] = w.acc[t * D + d] * inv;
  }
}

void run(const Problem& pr) {
  const AttentionShape& s = pr.s;
  const int64_t tiles = (s.q_len + kQueryTile - 1) / kQueryTile;
  const int64_t heads = s.batch * s.q_heads, units = tiles * heads;
  std::atomic<int64_t> next{0};
  parallel_for(ThreadPool::global().size(), [&](int64_t, int64_t) {
    thread_local Tiles w;
    w.resize(s.head_dim);
    for (int64_t u; (u = next.fetch_add(1)) < units;) {
      const int64_t tile = tiles - 1 - u / heads;  // most keys first
      const int64_t b = (u % heads) / s.q_heads, h = u % s.q_heads;
      const int64_t t0 = tile * kQueryTile;
      run_unit(pr, w, b, h, t0, std::min(kQueryTile, s.q_len - t0));
    }
  });
}

#else  // base copy: the same online softmax, one query at a time

void run(const Problem& pr) {
  const AttentionShape& s = pr.s;
  const int64_t D = s.head_dim, group = s.q_heads / s.kv_heads;
  parallel_for(s.batch * s.q_heads * s.q_len, [&](int64_t begin, int64_t end) {
    std::vector<float> acc(D);
    for (int64_t u = begin; u < end; ++u) {
      const int64_t t = u % s.q_len, h = (u / s.q_len) % s.q_heads, b = u / (s.q_len * s.q_heads);
      const float* q = pr.q + pr.q_index(b, t, h);
      const int64_t qp = pr.q_offset + t;
      float m = -INFINITY, l = 0;
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t key = pr.first_key(qp); key <= qp; ++key) {
        if (!pr.valid(b, key)) continue;
        const float* k = pr.k + pr.kv_index(b, key, h / group);
        const float* v = pr.v + pr.kv_index(b, key, h / group);
        float score = 0;
        for (int64_t d = 0; d < D; ++d) score += q[d] * pr.scale * k[d];
        if (pr.softcap > 0) score = pr.softcap * std::tanh(score / pr.softcap);
        const float m_new = std::max(m, score);
        const float alpha = std::exp(m - m_new), e = std::exp(score - m_new);
        for (int64_t d = 0; d < D; ++d) acc[d] = acc[d] * alpha + e * v[d];
        l = l * alpha + e;
        m = m_new;
      }
      float* out = pr.out + pr.q_index(b, t, h);
      for (int64_t d = 0; d < D; ++d) out[d] = l > 0 ? acc[d] / l : 0.0f;
    }
  });
}

#endif

}  // namespace

void attention(const float* q, const float* k, const float* v, const uint8_t* key_valid, float* out,
               const AttentionShape& shape, float scale, int64_t window, float softcap) {
  check_attention_shape(shape);
  if (shape.batch == 0 || shape.q_len == 0 || shape.q_heads == 0 || shape.head_dim == 0) return;
  Problem pr{q, k, v, key_valid, out, shape, scale, window, softcap, shape.kv_len - shape.q_len};
  run(pr);
}

}  // namespace zoft::cpu::detail::ZOFT_OPS_ISA
