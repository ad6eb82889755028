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

// f32 -> bf16 below is VCVTNE(2)PS2BF16 (every AMX-BF16 CPU has AVX512_BF16:
// core/cpu_features.cc): nearest even, NaN kept quiet, as core/dtype.h rounds, except that
// denormal inputs become zero (the instruction's DAZ); one instruction instead of eight, and
// this object rounds every x, q, k, v and probability it feeds to the tiles.

// 32 floats of x (fewer at K's end, the rest 0) as 16 dwords of bf16 pairs (k, k + 1).
inline __m512i bf16_pairs(const float* src, int64_t count) {
  const __m512 lo = _mm512_maskz_loadu_ps(simd::first_lanes(count), src);
  const __m512 hi = _mm512_maskz_loadu_ps(simd::first_lanes(count - 16), src + 16);
  return __m512i(_mm512_cvtne2ps_pbh(hi, lo));
}

// 16 floats as bf16 bits in the low half of each dword.
inline __m512i round_to_bf16(__m512 v) {
  return _mm512_cvtepu16_epi32(__m256i(_mm512_cvtneps_pbh(v)));
}

}  // namespace
}  // namespace zoft::cpu::detail::amx
