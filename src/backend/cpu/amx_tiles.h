// Internal to the AMX object (gemm_amx.cc, attention_amx.cc; compiled with -mamx-tile
// -mamx-bf16): tile configuration, per-thread scratch and the AVX-512 helpers that move f32
// data into TDPBF16PS's operand layouts.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstdlib>

#include "backend/cpu/simd.h"

// GCC 12 reports the _mm512_undefined_epi32() inside its own unpack intrinsics as uninitialised.
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace zoft::cpu::detail::amx {
// Internal linkage in every file that includes it, for the reason in tools/check_isa_objects.py.
namespace {

constexpr int64_t kTile = 16;        // rows of a tile
constexpr int64_t kStep = 32;        // bf16 per tile row: one k step of TDPBF16PS (16 pairs)
constexpr int64_t kTileElems = 512;  // bf16 in one 1 KiB tile

// Eight tiles of 16 rows x 64 bytes (C 0-3, operands 4-7).
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t bytes_per_row[16] = {};
  uint8_t rows[16] = {};
};

void load_tile_config() {
  TileConfig config;
  for (int t = 0; t < 8; ++t) {
    config.rows[t] = kTile;
    config.bytes_per_row[t] = 64;
  }
  _tile_loadconfig(&config);
}

// C tiles 0-3 to zero: every output's chain of products starts there.
inline void zero_accumulators() {
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
}

// A per-thread buffer kept between calls (plain malloc: no templates in this object).
struct Scratch {
  void* data = nullptr;
  size_t bytes = 0;
  ~Scratch() { std::free(data); }
  void* get(size_t want) {
    if (want > bytes) {
      std::free(data);
      bytes = (want + 4095) / 4096 * 4096;
      data = std::aligned_alloc(64, bytes);
    }
    return data;
  }
};

int64_t round_up(int64_t v, int64_t to) {
  return (v + to - 1) / to * to;
}

// 16 dwords in each of r[0..15] -> r[c][i] = old r[i][c].
inline __attribute__((always_inline)) void transpose16(__m512i r[16]) {
  __m512i t[16], u[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    u[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    u[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    u[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    u[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  // u[4g + j], 128-bit lane L: rows 4g..4g+3 of column 4L + j.
  for (int j = 0; j < 4; ++j) {
    const __m512i v0 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x88);
    const __m512i v1 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xdd);
    const __m512i w0 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x88);
    const __m512i w1 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xdd);
    r[j] = _mm512_shuffle_i32x4(v0, w0, 0x88);
    r[8 + j] = _mm512_shuffle_i32x4(v0, w0, 0xdd);
    r[4 + j] = _mm512_shuffle_i32x4(v1, w1, 0x88);
    r[12 + j] = _mm512_shuffle_i32x4(v1, w1, 0xdd);
  }
}

// f32 -> bf16 bits in the low half of each dword, nearest even, NaN kept quiet (core/dtype.h).
__m512i round_to_bf16(__m512 v) {
  const __m512i bits = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_srli_epi32(
      _mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
  const __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x40));
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(
      _mm512_and_si512(bits, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
  return _mm512_mask_mov_epi32(rounded, nan, quiet);
}

// 32 floats of x (fewer at K's end, the rest 0) as 16 dwords of bf16 pairs (k, k + 1).
__m512i bf16_pairs(const float* src, int64_t count) {
  const __m256i a =
      _mm512_cvtepi32_epi16(round_to_bf16(_mm512_maskz_loadu_ps(simd::first_lanes(count), src)));
  const __m256i b = _mm512_cvtepi32_epi16(
      round_to_bf16(_mm512_maskz_loadu_ps(simd::first_lanes(count - 16), src + 16)));
  return _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
}

}  // namespace
}  // namespace zoft::cpu::detail::amx
