// The amx path's bf16 GEMM: our own kernel on AMX tiles (TDPBF16PS), compiled on its own with
// the AMX flags (CMakeLists.txt) and called only where cpu_features() granted the tiles.
//
// Why not oneDNN's matmul (the onednn path): it reorders W into its blocked layout on every call
// (W changes between ZO forwards), through a single-threaded reorder for any W up to 4096 wide;
// for a decode row that is a pass over every weight per token, and generation ran 4x slower
// than the AVX-512 BF16 kernels. Here, two ways to feed the tiles, chosen by the row count:
// - up to kInPlaceRows tokens, W is read in place: TDPBF16PS's first operand is 16 rows of 32
//   bf16, which is exactly 16 rows of W[N,K] as stored. x, rounded to bf16, is the second
//   operand ([16 k-pairs][16 tokens][2] per tile), each C tile holds y transposed
//   (16 outputs x 16 tokens) and goes to y through a 16x16 transpose in registers;
// - more tokens pack W into the second operand's layout, by all threads, a slice of at most
//   kPackedBytes at a time, and x's rows are the first operand: C tiles are y's rows, stored in
//   place. Packing W costs K N / 2 dword moves against M N for transposing every output tile.
// Bits: every output is one chain of TDPBF16PS over k = 0, 32, 64, ... from its bias (or zero),
// whatever the way, blocking, M, N or thread count (the two ways only swap the operands of each
// product), so a row's result depends on neither M nor the threads (LinearTest.RowDoesNotDependOnM
// crosses kInPlaceRows).
#include "backend/cpu/gemm_amx.h"

#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "backend/cpu/amx_tiles.h"
#include "core/thread_pool.h"

namespace zoft::cpu::detail {

namespace {

using namespace amx;

constexpr int64_t kPrefetch = 2;      // x tiles are prefetched this many k steps ahead
constexpr int64_t kInPlaceRows = 64;  // up to this many tokens W is read in place
constexpr int64_t kPackedBytes = int64_t(4) << 20;  // W packed per slice of at most this much

// x's tokens [16 b, 16 b + 16) at every k step, one 1 KiB tile per step, zero past M, either
// as rows (tile row = token: 16 pairs of k) or transposed (tile row = pair of k: 16 tokens).
void pack_token_block(const float* x, int64_t M, int64_t K, int64_t b, int64_t steps,
                      bool transposed, uint16_t* out) {
  for (int64_t s = 0; s < steps; ++s) {
    __m512i r[16];
    for (int64_t c = 0; c < kTile; ++c) {
      const int64_t t = b * kTile + c;
      r[c] = t < M ? bf16_pairs(x + t * K + s * kStep, std::min(kStep, K - s * kStep))
                   : _mm512_setzero_si512();
    }
    if (transposed) transpose16(r);
    for (int i = 0; i < 16; ++i)
      _mm512_store_si512(out + (b * steps + s) * kTileElems + i * 32, r[i]);
  }
}

// W's outputs [16 j, 16 j + 16) as the second operand at every k step: tile row = pair of k,
// 16 outputs. Outputs past N and k past K are zero.
// out holds the blocks from `first` on.
void pack_weight_block(const uint16_t* w, bool kn, int64_t K, int64_t N, int64_t j, int64_t first,
                       int64_t steps, uint16_t* out) {
  const int64_t n0 = j * kTile, cols = std::clamp<int64_t>(N - n0, 0, kTile);
  const __mmask16 col_mask = simd::first_lanes(cols);
  for (int64_t s = 0; s < steps; ++s) {
    const int64_t k0 = s * kStep, ks = std::min(kStep, K - k0);
    __m512i r[16];
    if (kn) {  // rows k and k + 1 of W[K,N] interleaved: already a tile row
      for (int i = 0; i < 16; ++i) {
        const int64_t k = k0 + 2 * i;
        const __m512i lo =
            k < K ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(col_mask, w + k * N + n0))
                  : _mm512_setzero_si512();
        const __m512i hi =
            k + 1 < K
                ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(col_mask, w + (k + 1) * N + n0))
                : _mm512_setzero_si512();
        r[i] = _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16));
      }
    } else {  // 16 rows of W[N,K], 32 k each, transposed into pairs x outputs
      const __mmask32 k_mask = ks >= 32 ? 0xffffffffu : __mmask32((1u << ks) - 1);
      for (int c = 0; c < 16; ++c)
        r[c] = c < cols ? _mm512_maskz_loadu_epi16(k_mask, w + (n0 + c) * K + k0)
                        : _mm512_setzero_si512();
      transpose16(r);
    }
    for (int i = 0; i < 16; ++i)
      _mm512_store_si512(out + ((j - first) * steps + s) * kTileElems + i * 32, r[i]);
  }
}

struct Operands {
  const uint16_t* xp;    // packed x: [token blocks][steps][512]
  const uint16_t* wp;    // packed W ([16-output blocks][steps][512]), or null: W read in place
  int64_t wp_first;      // the output wp starts with
  const uint16_t* w;     // W [N,K] in place: rows [0, full_rows)
  const uint16_t* tail;  // rows [full_rows, N) copied, zero-padded to 32 rows of `steps` * 32
  int64_t full_rows;
  int64_t steps, M, N;
  // The accumulators start from the bias (y = bias + the products over k: one chain, whichever
  // way), or from zero when null: N biases padded with zeros to whole tile pairs.
  const float* bias;
  float* y;
};

// C tiles of block_packed (rows: tokens, columns: outputs n.. and n + 16..) to the bias: every
// row the same 64 bytes, a stride-0 load.
void start_packed(const Operands& o, int64_t n) {
  if (!o.bias) return zero_accumulators();
  _tile_loadd(0, o.bias + n, 0);
  _tile_loadd(1, o.bias + n + kTile, 0);
  _tile_loadd(2, o.bias + n, 0);
  _tile_loadd(3, o.bias + n + kTile, 0);
}

// C tiles of block_in_place (rows: outputs n.. and n + 16.., columns: tokens) to the bias: row i
// is bias n + i broadcast, built in L1.
void start_in_place(const Operands& o, int64_t n) {
  if (!o.bias) return zero_accumulators();
  alignas(64) float rows[2][256];
  for (int i = 0; i < 16; ++i) {
    _mm512_store_ps(rows[0] + i * 16, _mm512_set1_ps(o.bias[n + i]));
    _mm512_store_ps(rows[1] + i * 16, _mm512_set1_ps(o.bias[n + kTile + i]));
  }
  // GCC does not count a tile load as a read of `rows`: without this the stores are dropped.
  asm volatile("" : : "r"(rows) : "memory");
  _tile_loadd(0, rows[0], 64);
  _tile_loadd(1, rows[0], 64);
  _tile_loadd(2, rows[1], 64);
  _tile_loadd(3, rows[1], 64);
}

// Tile c (rows: tokens t0.., columns: outputs n0..) into y. A whole tile is stored in place; a
// partial one through `scratch`.
void store_rows(const Operands& o, int tile, float* scratch, int64_t t0, int64_t n0) {
  const int64_t rows = std::min<int64_t>(16, o.M - t0), cols = std::min<int64_t>(16, o.N - n0);
  if (rows <= 0 || cols <= 0) return;
  const bool whole = rows == 16 && cols == 16;
  float* c = whole ? o.y + t0 * o.N + n0 : scratch;
  const int64_t ldc = whole ? o.N : 16;
  switch (tile) {  // the tile register is an immediate
    case 0:
      _tile_stored(0, c, ldc * 4);
      break;
    case 1:
      _tile_stored(1, c, ldc * 4);
      break;
    case 2:
      _tile_stored(2, c, ldc * 4);
      break;
    default:
      _tile_stored(3, c, ldc * 4);
      break;
  }
  if (whole) return;
  const __mmask16 mask = simd::first_lanes(cols);
  for (int64_t t = 0; t < rows; ++t)
    _mm512_mask_storeu_ps(o.y + (t0 + t) * o.N + n0, mask, _mm512_loadu_ps(c + t * 16));
}

// Tile c (rows: outputs n0.., columns: tokens t0..) into y[t][n].
void store_transposed(const Operands& o, const float* c, int64_t n0, int64_t t0) {
  if (n0 >= o.N) return;
  __m512i r[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_load_si512(c + i * 16);
  transpose16(r);
  const __mmask16 mask = simd::first_lanes(o.N - n0);
  for (int64_t t = 0; t < std::min<int64_t>(16, o.M - t0); ++t)
    _mm512_mask_storeu_ps(o.y + (t0 + t) * o.N + n0, mask, _mm512_castsi512_ps(r[t]));
}

void prefetch_tile(const uint16_t* tile) {
  for (int l = 0; l < 16; ++l)
    _mm_prefetch(reinterpret_cast<const char*>(tile) + l * 64, _MM_HINT_T0);
}

// Tokens of blocks b (and b + 1 when two) x outputs [n, n + 32) from packed x and packed W:
// C0 = (b, n), C1 = (b, n + 16), C2 = (b + 1, n), C3 = (b + 1, n + 16).
void block_packed(const Operands& o, int64_t n, int64_t b, bool two) {
  const uint16_t* a0 = o.xp + b * o.steps * kTileElems;
  const uint16_t* a1 = a0 + o.steps * kTileElems;
  const uint16_t* b0 = o.wp + ((n - o.wp_first) / kTile) * o.steps * kTileElems;
  const uint16_t* b1 = b0 + o.steps * kTileElems;
  start_packed(o, n);
  for (int64_t s = 0; s < o.steps; ++s) {
    if (s + kPrefetch < o.steps) {
      prefetch_tile(a0 + (s + kPrefetch) * kTileElems);
      if (two) prefetch_tile(a1 + (s + kPrefetch) * kTileElems);
    }
    // Tiles are not renamed: a load waits for the products still reading its register, so
    // loads and products alternate.
    _tile_loadd(4, a0 + s * kTileElems, 64);
    _tile_loadd(6, b0 + s * kTileElems, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_loadd(7, b1 + s * kTileElems, 64);
    _tile_dpbf16ps(1, 4, 7);
    if (two) {
      _tile_loadd(5, a1 + s * kTileElems, 64);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
  }
  alignas(64) float scratch[256];
  store_rows(o, 0, scratch, b * kTile, n);
  store_rows(o, 1, scratch, b * kTile, n + kTile);
  if (two) {
    store_rows(o, 2, scratch, (b + 1) * kTile, n);
    store_rows(o, 3, scratch, (b + 1) * kTile, n + kTile);
  }
}

const uint16_t* w_rows(const Operands& o, int64_t n) {
  return n < o.full_rows ? o.w + n * o.steps * kStep : o.tail + (n - o.full_rows) * o.steps * kStep;
}

// Outputs [n, n + 32) x tokens of blocks b (and b + 1 when two), W read in place (16 of its rows
// are the first operand) and x transposed: C0 = (n, b), C1 = (n, b + 1), C2 = (n + 16, b),
// C3 = (n + 16, b + 1), each transposed into y.
void block_in_place(const Operands& o, int64_t n, int64_t b, bool two) {
  const uint16_t* a0 = w_rows(o, n);
  const uint16_t* a1 = w_rows(o, n + kTile);
  const int64_t lda = 2 * o.steps * kStep;
  const uint16_t* b0 = o.xp + b * o.steps * kTileElems;
  const uint16_t* b1 = b0 + o.steps * kTileElems;
  start_in_place(o, n);
  for (int64_t s = 0; s < o.steps; ++s) {
    _tile_loadd(4, a0 + s * kStep, lda);
    _tile_loadd(6, b0 + s * kTileElems, 64);
    _tile_dpbf16ps(0, 4, 6);
    if (two) {
      _tile_loadd(7, b1 + s * kTileElems, 64);
      _tile_dpbf16ps(1, 4, 7);
    }
    _tile_loadd(5, a1 + s * kStep, lda);
    _tile_dpbf16ps(2, 5, 6);
    if (two) _tile_dpbf16ps(3, 5, 7);
  }
  alignas(64) float c[4][256];
  _tile_stored(0, c[0], 64);
  _tile_stored(2, c[2], 64);
  store_transposed(o, c[0], n, b * kTile);
  store_transposed(o, c[2], n + kTile, b * kTile);
  if (two) {
    _tile_stored(1, c[1], 64);
    _tile_stored(3, c[3], 64);
    store_transposed(o, c[1], n, (b + 1) * kTile);
    store_transposed(o, c[3], n + kTile, (b + 1) * kTile);
  }
}

// One task: outputs [n0, n1) x token blocks [b0, b1). Packed: two token blocks' x stay in L1
// while the panel's outputs pass them (the panel's packed W stays in L2 for the task's next
// tokens). In place: each 32 rows of W are read once, by the task's few tokens.
void run_panel(const Operands& o, int64_t n0, int64_t n1, int64_t b0, int64_t b1) {
  if (o.wp) {
    for (int64_t b = b0; b < b1; b += 2)
      for (int64_t n = n0; n < n1; n += 2 * kTile) block_packed(o, n, b, b + 1 < b1);
    return;
  }
  for (int64_t n = n0; n < n1; n += 2 * kTile)
    for (int64_t b = b0; b < b1; b += 2) block_in_place(o, n, b, b + 1 < b1);
}

// W[N,K] rows [from, N), zero-padded to 32 rows of `steps` * 32 bf16 (the last whole 32-row
// block is the last one read in place).
void copy_tail_rows(const uint16_t* w, int64_t K, int64_t N, int64_t from, int64_t steps,
                    uint16_t* out) {
  const int64_t width = steps * kStep, rows = round_up(N - from, 2 * kTile);
  std::memset(out, 0, size_t(rows * width) * 2);
  for (int64_t n = from; n < N; ++n)
    std::memcpy(out + (n - from) * width, w + n * K, size_t(K) * 2);
}

// Outputs [n0, n1) for every token on the pool: panels of 256 outputs x 8 token blocks (64
// outputs for a few tokens, to spread a decode row over the threads). 256 x 128 tokens ran the
// forward 6-15 % faster than 128 x 256 (llama bf16, one thread): x's reuse from L1 beats W's.
void run_tasks(const Operands& o, int64_t n0, int64_t n1, int64_t blocks) {
  const int64_t panel_n = blocks <= 4 ? 64 : 256, panel_b = 8;
  const int64_t n_panels = round_up(n1 - n0, panel_n) / panel_n;
  const int64_t b_panels = round_up(blocks, panel_b) / panel_b;
  parallel_for(n_panels * b_panels, [&](int64_t begin, int64_t end) {
    load_tile_config();
    for (int64_t t = begin; t < end; ++t) {
      const int64_t pn = t % n_panels, pb = t / n_panels;
      run_panel(o, n0 + pn * panel_n, std::min(n1, n0 + (pn + 1) * panel_n), pb * panel_b,
                std::min(blocks, (pb + 1) * panel_b));
    }
    _tile_release();
  });
}

}  // namespace

void amx_gemm_bf16(const float* x, int64_t M, int64_t K, const uint16_t* w, bool weight_is_kn,
                   int64_t N, const float* bias, float* y) {
  thread_local Scratch packed_x, packed_w, padded_bias;
  const int64_t steps = round_up(K, kStep) / kStep, blocks = round_up(M, kTile) / kTile;
  // A few tokens read W in place (nothing copied per call: a decode row costs one pass over W);
  // more tokens pack W, which costs less than transposing every output tile.
  const bool in_place = M <= kInPlaceRows && !weight_is_kn && K % kStep == 0;
  Operands o{};
  o.steps = steps;
  o.M = M;
  o.N = N;
  o.y = y;
  o.w = w;
  auto* xp = static_cast<uint16_t*>(packed_x.get(size_t(blocks * steps * kTileElems) * 2));
  o.xp = xp;
  parallel_for(blocks, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) pack_token_block(x, M, K, b, steps, in_place, xp);
  });
  if (bias) {
    const int64_t padded = round_up(N, 2 * kTile);
    auto* b = static_cast<float*>(padded_bias.get(size_t(padded) * sizeof(float)));
    std::memcpy(b, bias, size_t(N) * sizeof(float));
    std::fill(b + N, b + padded, 0.0f);
    o.bias = b;
  }
  if (in_place) {
    o.full_rows = N / (2 * kTile) * (2 * kTile);
    auto* tail = static_cast<uint16_t*>(packed_w.get(size_t(2 * kTile * K) * 2));
    if (o.full_rows < N) copy_tail_rows(w, K, N, o.full_rows, steps, tail);
    o.tail = tail;
    run_tasks(o, 0, N, blocks);
    return;
  }
  // W is packed a slice of outputs at a time (at most kPackedBytes, whole 256-output panels), so
  // the scratch stays small for a 262144-token vocabulary and the slice stays in cache.
  const int64_t slice = std::max<int64_t>(256, kPackedBytes / (2 * steps * kStep) / 256 * 256);
  auto* wp = static_cast<uint16_t*>(
      packed_w.get(size_t(std::min(round_up(N, 2 * kTile), slice) * steps * kStep) * 2));
  o.wp = wp;
  for (int64_t n0 = 0; n0 < N; n0 += slice) {
    const int64_t n1 = std::min(N, n0 + slice), w_blocks = round_up(n1 - n0, 2 * kTile) / kTile;
    parallel_for(w_blocks, [&](int64_t begin, int64_t end) {
      for (int64_t j = begin; j < end; ++j)
        pack_weight_block(w, weight_is_kn, K, N, n0 / kTile + j, n0 / kTile, steps, wp);
    });
    o.wp_first = n0;
    run_tasks(o, n0, n1, blocks);
  }
}

}  // namespace zoft::cpu::detail
