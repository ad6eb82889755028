// Attention on AMX tiles for the amx path, when the caller allows bf16 products
// (AttentionShape::bf16_products: a bf16 model's forward-only passes, as HF's bf16 forward
// computes them): q, k, v and the probabilities are rounded to bf16, every product is summed in
// f32 by TDPBF16PS, the softmax runs in f32. Same masking and semantics as attention.cc (causal
// from q_offset, key_valid, window; a query that sees no key gets zeros); no softcap.
//
// Per (sequence, kv head) K and V are packed once into the second operand's layout:
//   K: per 16 keys and 32 dims, tile row = a pair of dims, column = key   (S = Q K^T)
//   V: per 16 dims and 32 keys, tile row = a pair of keys, column = dim   (O = P V)
// A work unit is 16 queries of one head: S = Q K^T for the keys they may see, into a
// [16, keys] f32 block (16 KiB per 256 keys); exp(S - max) rounded to bf16 is P, whose rows are
// the first operand of O = P V as they lie; O / sum goes to out.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "backend/cpu/amx_tiles.h"
#include "backend/cpu/attention_problem.h"
#include "backend/cpu/gemm_amx.h"
#include "backend/cpu/simd.h"
#include "core/thread_pool.h"

namespace zoft::cpu::detail {

namespace {

using namespace amx;

constexpr int64_t kMaxKeys = 8192;                      // keys per sequence
constexpr int64_t kMaxPackedBytes = int64_t(64) << 20;  // K and V packed, all sequences
constexpr int64_t kMinQueries = 16;                     // fewer (decode): attention.cc

// Problem plus K and V packed for the tiles.
struct AmxProblem : attention::Problem {
  int64_t dim_steps, key_pad;  // D / 32; kv_len rounded up to 32
  uint16_t* packed;            // per (b, hk): K [key_pad / 16][dim_steps][512], then V

  size_t kv_elems() const { return size_t(key_pad * s.head_dim); }
  const uint16_t* keys(int64_t b, int64_t hk) const {
    return packed + 2 * size_t(b * s.kv_heads + hk) * kv_elems();
  }
  const uint16_t* values(int64_t b, int64_t hk) const { return keys(b, hk) + kv_elems(); }
};

// K of (b, hk): 16 keys x 32 dims per tile, transposed into pairs of dims x keys.
void pack_keys(const AmxProblem& p, int64_t b, int64_t hk, uint16_t* out) {
  for (int64_t kb = 0; kb < p.key_pad / kTile; ++kb)
    for (int64_t s = 0; s < p.dim_steps; ++s) {
      __m512i r[16];
      for (int64_t c = 0; c < kTile; ++c) {
        const int64_t key = kb * kTile + c;
        r[c] = key < p.s.kv_len ? bf16_pairs(p.k + p.kv_index(b, key, hk) + s * kStep, kStep)
                                : _mm512_setzero_si512();
      }
      transpose16(r);
      for (int i = 0; i < 16; ++i)
        _mm512_store_si512(out + (kb * p.dim_steps + s) * kTileElems + i * 32, r[i]);
    }
}

// V of (b, hk): per 16 dims and 32 keys, row i = keys 2i and 2i + 1 interleaved.
void pack_values(const AmxProblem& p, int64_t b, int64_t hk, uint16_t* out) {
  const int64_t dim_blocks = p.s.head_dim / kTile, key_steps = p.key_pad / kStep;
  auto row = [&](int64_t key, int64_t db) {
    return key < p.s.kv_len ? round_to_bf16(_mm512_loadu_ps(p.v + p.kv_index(b, key, hk) + db * 16))
                            : _mm512_setzero_si512();
  };
  for (int64_t db = 0; db < dim_blocks; ++db)
    for (int64_t ks = 0; ks < key_steps; ++ks)
      for (int64_t i = 0; i < 16; ++i) {
        const int64_t key = ks * kStep + 2 * i;
        const __m512i pair = _mm512_or_si512(row(key, db), _mm512_slli_epi32(row(key + 1, db), 16));
        _mm512_store_si512(out + (db * key_steps + ks) * kTileElems + i * 32, pair);
      }
}

// Per-thread buffers of one unit.
struct Work {
  Scratch q, s, p, o;
};

// C tiles 0..n-1 (n <= 4) = sum over `steps` of A(step) x B_i(step); A tiles at a + step *
// a_step with row stride lda bytes, B_i tiles at b[i] + step * kTileElems. Stored to c + 16 i
// with row stride ldc floats.
void products(int n, int64_t steps, const uint16_t* a, int64_t a_step, int64_t lda,
              const uint16_t* const* b, float* c, int64_t ldc) {
  zero_accumulators();
  for (int64_t s = 0; s < steps; ++s) {
    _tile_loadd(4, a + s * a_step, lda);
    _tile_loadd(6, b[0] + s * kTileElems, 64);
    _tile_dpbf16ps(0, 4, 6);
    if (n > 1) {
      _tile_loadd(7, b[1] + s * kTileElems, 64);
      _tile_dpbf16ps(1, 4, 7);
    }
    if (n > 2) {
      _tile_loadd(6, b[2] + s * kTileElems, 64);
      _tile_dpbf16ps(2, 4, 6);
    }
    if (n > 3) {
      _tile_loadd(7, b[3] + s * kTileElems, 64);
      _tile_dpbf16ps(3, 4, 7);
    }
  }
  _tile_stored(0, c, ldc * 4);
  if (n > 1) _tile_stored(1, c + 16, ldc * 4);
  if (n > 2) _tile_stored(2, c + 32, ldc * 4);
  if (n > 3) _tile_stored(3, c + 48, ldc * 4);
}

// Row r of S (keys [k0, k0 + n), n <= kMaxKeys) -> exp(S * scale - max) as bf16 into P;
// returns the f32 sum (0: the query sees no key, and P's row is zero).
float softmax_row(const AmxProblem& p, int64_t b, int64_t qp, const float* s, int64_t k0, int64_t n,
                  uint16_t* prow) {
  const int64_t lo = p.first_key(qp) - k0, hi = qp - k0;  // visible by position, row-relative
  const uint8_t* valid = p.key_valid ? p.key_valid + b * p.s.kv_len + k0 : nullptr;
  __mmask16 seen[kMaxKeys / 16];
  __m512 best = _mm512_set1_ps(-INFINITY);
  const __m512 scale = _mm512_set1_ps(p.scale);
  for (int64_t j = 0; j < n; j += 16) {
    __mmask16 m = simd::lane_range(lo - j, hi - j);
    if (valid && m)
      m = _mm_mask_test_epi8_mask(m, _mm_maskz_loadu_epi8(m, valid + j), _mm_set1_epi8(-1));
    seen[j / 16] = m;
    best = _mm512_mask_max_ps(best, m, best, _mm512_mul_ps(_mm512_loadu_ps(s + j), scale));
  }
  const float top = _mm512_reduce_max_ps(best);
  if (top == -INFINITY) {
    std::memset(prow, 0, size_t(n) * 2);
    return 0.0f;
  }
  __m512 sum = _mm512_setzero_ps();
  for (int64_t j = 0; j < n; j += 16) {
    const __m512 x = _mm512_mul_ps(_mm512_loadu_ps(s + j), scale);
    const __m512 e =
        _mm512_maskz_mov_ps(seen[j / 16], simd::exp(_mm512_sub_ps(x, _mm512_set1_ps(top))));
    sum = _mm512_add_ps(sum, e);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(prow + j), __m256i(_mm512_cvtneps_pbh(e)));
  }
  return _mm512_reduce_add_ps(sum);
}

// Queries [t0, t0 + 16) of head h in sequence b.
void run_unit(const AmxProblem& p, Work& w, int64_t b, int64_t h, int64_t t0) {
  const int64_t D = p.s.head_dim, hk = h / (p.s.q_heads / p.s.kv_heads);
  const int64_t nq = std::min(kTile, p.s.q_len - t0), qp0 = p.q_offset + t0;
  const int64_t k0 = p.first_key(qp0) / kStep * kStep;
  const int64_t n = round_up(qp0 + nq, kStep) - k0;  // keys, a multiple of 32
  // Q rows as the first operand: [dim_steps][16 queries][32].
  auto* q = static_cast<uint16_t*>(w.q.get(size_t(p.dim_steps * kTileElems) * 2));
  for (int64_t s = 0; s < p.dim_steps; ++s)
    for (int64_t c = 0; c < kTile; ++c)
      _mm512_store_si512(q + s * kTileElems + c * 32,
                         c < nq ? bf16_pairs(p.q + p.q_index(b, t0 + c, h) + s * kStep, kStep)
                                : _mm512_setzero_si512());
  auto* S = static_cast<float*>(w.s.get(size_t(kTile * n) * 4));
  const uint16_t* keys = p.keys(b, hk) + (k0 / kTile) * p.dim_steps * kTileElems;
  for (int64_t j = 0; j < n / kTile; j += 4) {
    const int blocks = int(std::min<int64_t>(4, n / kTile - j));
    const uint16_t* kb[4];
    for (int i = 0; i < blocks; ++i) kb[i] = keys + (j + i) * p.dim_steps * kTileElems;
    products(blocks, p.dim_steps, q, kTileElems, 64, kb, S + j * kTile, n);
  }
  auto* P = static_cast<uint16_t*>(w.p.get(size_t(kTile * n) * 2));
  float inv[kTile];
  for (int64_t r = 0; r < kTile; ++r) {
    const float sum = r < nq ? softmax_row(p, b, qp0 + r, S + r * n, k0, n, P + r * n) : 0.0f;
    if (r >= nq) std::memset(P + r * n, 0, size_t(n) * 2);
    inv[r] = sum > 0 ? 1.0f / sum : 0.0f;
  }
  auto* O = static_cast<float*>(w.o.get(size_t(kTile * D) * 4));
  const int64_t key_steps = p.key_pad / kStep;
  for (int64_t db = 0; db < D / kTile; db += 4) {
    const int blocks = int(std::min<int64_t>(4, D / kTile - db));
    const uint16_t* vb[4];
    for (int i = 0; i < blocks; ++i)
      vb[i] = p.values(b, hk) + ((db + i) * key_steps + k0 / kStep) * kTileElems;
    products(blocks, n / kStep, P, kStep, n * 2, vb, O + db * kTile, D);
  }
  for (int64_t r = 0; r < nq; ++r) {
    float* out = p.out + ((b * p.s.q_len + t0 + r) * p.s.q_heads + h) * D;
    for (int64_t d = 0; d < D; ++d) out[d] = O[r * D + d] * inv[r];
  }
}

}  // namespace

bool amx_attention_fits(const AttentionShape& s, float softcap) {
  const int64_t key_pad = round_up(s.kv_len, kStep);
  return softcap <= 0 && s.batch > 0 && s.q_heads > 0 && s.head_dim > 0 &&
         s.head_dim % kStep == 0 && s.q_len >= kMinQueries && s.kv_len <= kMaxKeys &&
         4 * s.batch * s.kv_heads * key_pad * s.head_dim <= kMaxPackedBytes;
}

void amx_attention(const float* q, const float* k, const float* v, const uint8_t* key_valid,
                   float* out, const AttentionShape& s, float scale, int64_t window) {
  thread_local Scratch packed;
  AmxProblem p{{q, k, v, key_valid, out, s, scale, window, 0.0f, s.kv_len - s.q_len},
               s.head_dim / kStep,
               round_up(s.kv_len, kStep),
               nullptr};
  const int64_t sequences = s.batch * s.kv_heads;
  p.packed = static_cast<uint16_t*>(packed.get(2 * size_t(sequences) * p.kv_elems() * 2));
  parallel_for(sequences, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / s.kv_heads, hk = i % s.kv_heads;
      pack_keys(p, b, hk, const_cast<uint16_t*>(p.keys(b, hk)));
      pack_values(p, b, hk, const_cast<uint16_t*>(p.values(b, hk)));
    }
  });
  const int64_t tiles = (s.q_len + kTile - 1) / kTile, heads = s.batch * s.q_heads;
  const int64_t units = tiles * heads;
  std::atomic<int64_t> next{0};
  parallel_for(ThreadPool::global().size(), [&](int64_t, int64_t) {
    thread_local Work w;
    load_tile_config();
    for (int64_t u; (u = next.fetch_add(1)) < units;) {
      const int64_t tile = tiles - 1 - u / heads;  // most keys first
      run_unit(p, w, (u % heads) / s.q_heads, u % s.q_heads, tile * kTile);
    }
    _tile_release();
  });
}

}  // namespace zoft::cpu::detail
