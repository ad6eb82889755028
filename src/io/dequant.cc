// Block layouts follow ggml-common.h (read, not copied). Every block is read through memcpy
// loads at byte offsets: blocks of 18 or 22 bytes leave the f16 scales unaligned for wider
// types, and the file gives no alignment beyond the tensor start anyway.
//
// Exactness: the results equal gguf-py's gguf.quants.dequantize bit for bit. Both compute
// scale = d * sub_scale in f32 first and then scale * q (- min); with f16 d and small integer
// sub-scales and quants those products are exact in f32, so the order (and whether the compiler
// fuses multiply and add) cannot change a result.
#include "io/dequant.h"

#include <cstring>

#include "core/dtype.h"
#include "core/error.h"

namespace zoft {

namespace {

struct TypeEntry {
  uint32_t id;
  GgmlTypeInfo info;
};

// Sizes from gguf-py's GGML_QUANT_SIZES (the on-disk contract, identical to ggml's type traits).
constexpr TypeEntry kTypes[] = {
    {0, {"F32", 1, 4, true}},          {1, {"F16", 1, 2, true}},
    {2, {"Q4_0", 32, 18, true}},       {3, {"Q4_1", 32, 20, true}},
    {6, {"Q5_0", 32, 22, true}},       {7, {"Q5_1", 32, 24, true}},
    {8, {"Q8_0", 32, 34, true}},       {9, {"Q8_1", 32, 40, false}},
    {10, {"Q2_K", 256, 84, false}},    {11, {"Q3_K", 256, 110, false}},
    {12, {"Q4_K", 256, 144, true}},    {13, {"Q5_K", 256, 176, true}},
    {14, {"Q6_K", 256, 210, true}},    {15, {"Q8_K", 256, 292, true}},
    {16, {"IQ2_XXS", 256, 66, false}}, {17, {"IQ2_XS", 256, 74, false}},
    {18, {"IQ3_XXS", 256, 98, false}}, {19, {"IQ1_S", 256, 50, false}},
    {20, {"IQ4_NL", 32, 18, false}},   {21, {"IQ3_S", 256, 110, false}},
    {22, {"IQ2_S", 256, 82, false}},   {23, {"IQ4_XS", 256, 136, false}},
    {24, {"I8", 1, 1, false}},         {25, {"I16", 1, 2, false}},
    {26, {"I32", 1, 4, false}},        {27, {"I64", 1, 8, false}},
    {28, {"F64", 1, 8, false}},        {29, {"IQ1_M", 256, 56, false}},
    {30, {"BF16", 1, 2, true}},        {34, {"TQ1_0", 256, 54, false}},
    {35, {"TQ2_0", 256, 66, false}},   {39, {"MXFP4", 32, 17, false}},
};

inline float load_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Q4_0: d:f16, qs[16]. Element j is the low nibble of qs[j], element j+16 the high one;
// both are offset by 8 so that 0..15 covers -8..7.
void dequant_q4_0(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 18, y += 32) {
    float d = load_f16(b);
    const uint8_t* qs = b + 2;
    for (int j = 0; j < 16; ++j) {
      y[j] = d * float(int(qs[j] & 0xF) - 8);
      y[j + 16] = d * float(int(qs[j] >> 4) - 8);
    }
  }
}

// Q4_1: d:f16, m:f16, qs[16]; unsigned quants with an explicit minimum.
void dequant_q4_1(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 20, y += 32) {
    float d = load_f16(b), m = load_f16(b + 2);
    const uint8_t* qs = b + 4;
    for (int j = 0; j < 16; ++j) {
      y[j] = d * float(qs[j] & 0xF) + m;
      y[j + 16] = d * float(qs[j] >> 4) + m;
    }
  }
}

// Q5_0: d:f16, qh:u32 (bit j = fifth bit of element j), qs[16] as in Q4_0; offset 16.
void dequant_q5_0(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 22, y += 32) {
    float d = load_f16(b);
    uint32_t qh = load_u32(b + 2);
    const uint8_t* qs = b + 6;
    for (int j = 0; j < 16; ++j) {
      int lo = (qs[j] & 0xF) | int((qh >> j) & 1) << 4;
      int hi = (qs[j] >> 4) | int((qh >> (j + 16)) & 1) << 4;
      y[j] = d * float(lo - 16);
      y[j + 16] = d * float(hi - 16);
    }
  }
}

// Q5_1: d:f16, m:f16, qh:u32, qs[16]; unsigned 5-bit quants with a minimum.
void dequant_q5_1(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 24, y += 32) {
    float d = load_f16(b), m = load_f16(b + 2);
    uint32_t qh = load_u32(b + 4);
    const uint8_t* qs = b + 8;
    for (int j = 0; j < 16; ++j) {
      int lo = (qs[j] & 0xF) | int((qh >> j) & 1) << 4;
      int hi = (qs[j] >> 4) | int((qh >> (j + 16)) & 1) << 4;
      y[j] = d * float(lo) + m;
      y[j + 16] = d * float(hi) + m;
    }
  }
}

// Q8_0: d:f16, qs:int8[32].
void dequant_q8_0(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 34, y += 32) {
    float d = load_f16(b);
    const int8_t* qs = reinterpret_cast<const int8_t*>(b + 2);
    for (int j = 0; j < 32; ++j) y[j] = float(qs[j]) * d;
  }
}

// The 12 scale bytes of Q4_K / Q5_K hold eight 6-bit scales and eight 6-bit minimums:
// bytes 0-3 scales 0-3 (low 6 bits), bytes 4-7 minimums 0-3 (low 6 bits); sub-blocks 4-7 take
// their low 4 bits from the nibbles of bytes 8-11 and their high 2 bits from the top bits of
// bytes 0-3 (scales) and 4-7 (minimums).
inline void k_scale_min(const uint8_t* s, int j, int* sc, int* m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Q4_K: d:f16, dmin:f16, scales[12], qs[128]. Eight sub-blocks of 32; sub-blocks 2k and 2k+1
// share qs[32k..32k+31] (low and high nibbles). y = d*sc * q - dmin*m.
void dequant_q4_k(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 144, y += 256) {
    float d = load_f16(b), dmin = load_f16(b + 2);
    const uint8_t* scales = b + 4;
    const uint8_t* qs = b + 16;
    for (int j = 0; j < 8; ++j) {
      int sc, m;
      k_scale_min(scales, j, &sc, &m);
      float dj = d * float(sc), mj = dmin * float(m);
      const uint8_t* q = qs + (j / 2) * 32;
      int shift = 4 * (j % 2);
      float* yj = y + j * 32;
      for (int l = 0; l < 32; ++l) yj[l] = dj * float((q[l] >> shift) & 0xF) - mj;
    }
  }
}

// Q5_K: d:f16, dmin:f16, scales[12], qh[32], qs[128]. As Q4_K, plus the fifth bit of element
// l of sub-block j in bit j of qh[l].
void dequant_q5_k(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 176, y += 256) {
    float d = load_f16(b), dmin = load_f16(b + 2);
    const uint8_t* scales = b + 4;
    const uint8_t* qh = b + 16;
    const uint8_t* qs = b + 48;
    for (int j = 0; j < 8; ++j) {
      int sc, m;
      k_scale_min(scales, j, &sc, &m);
      float dj = d * float(sc), mj = dmin * float(m);
      const uint8_t* q = qs + (j / 2) * 32;
      int shift = 4 * (j % 2);
      float* yj = y + j * 32;
      for (int l = 0; l < 32; ++l) {
        int v = ((q[l] >> shift) & 0xF) | ((qh[l] >> j) & 1) << 4;
        yj[l] = dj * float(v) - mj;
      }
    }
  }
}

// Q6_K: ql[128], qh[64], scales:int8[16], d:f16 (last). Two halves of 128 elements; in half
// h, group k (0..3) of 32 takes its low 4 bits from ql[64h + 32(k&1) + l] (nibble k>>1) and
// its high 2 bits from bits 2k..2k+1 of qh[32h + l]; quants are offset by 32 and each run of
// 16 elements has its own int8 scale.
void dequant_q6_k(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 210, y += 256) {
    const uint8_t* ql = b;
    const uint8_t* qh = b + 128;
    const int8_t* scales = reinterpret_cast<const int8_t*>(b + 192);
    float d = load_f16(b + 208);
    for (int h = 0; h < 2; ++h) {
      for (int k = 0; k < 4; ++k) {
        const uint8_t* lo = ql + 64 * h + 32 * (k & 1);
        const uint8_t* hi = qh + 32 * h;
        int lshift = 4 * (k >> 1), hshift = 2 * k;
        int e0 = 128 * h + 32 * k;  // first element of this group
        for (int half = 0; half < 2; ++half) {
          float ds = d * float(scales[(e0 >> 4) + half]);
          float* yy = y + e0 + 16 * half;
          for (int l = 16 * half; l < 16 * half + 16; ++l) {
            int q = ((lo[l] >> lshift) & 0xF) | ((hi[l] >> hshift) & 3) << 4;
            yy[l - 16 * half] = ds * float(q - 32);
          }
        }
      }
    }
  }
}

// Q8_K: d:f32, qs:int8[256], bsums:int16[16] (sums for dot products; not needed here).
void dequant_q8_k(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 292, y += 256) {
    float d;
    std::memcpy(&d, b, 4);
    const int8_t* qs = reinterpret_cast<const int8_t*>(b + 4);
    for (int j = 0; j < 256; ++j) y[j] = d * float(qs[j]);
  }
}

}  // namespace

const GgmlTypeInfo* ggml_type_info(uint32_t id) {
  for (const TypeEntry& e : kTypes)
    if (e.id == id) return &e.info;
  return nullptr;
}

const char* ggml_type_name(GgmlType type) {
  const GgmlTypeInfo* info = ggml_type_info(uint32_t(type));
  return info ? info->name : "unknown";
}

bool ggml_can_dequantize(GgmlType type) {
  const GgmlTypeInfo* info = ggml_type_info(uint32_t(type));
  return info && info->dequantizable;
}

void dequantize_row(GgmlType type, const void* blocks, float* out, int64_t n) {
  const GgmlTypeInfo* info = ggml_type_info(uint32_t(type));
  if (!info || !info->dequantizable)
    fail(
        "dequantize: GGML type {} ({}) is not supported: supported are F32, F16, BF16, Q4_0, "
        "Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, Q8_K",
        info ? info->name : "unknown", uint32_t(type));
  if (n < 0 || n % info->block_size != 0)
    fail("dequantize: {} elements of {} is not a whole number of {}-element blocks", n, info->name,
         info->block_size);
  if (n == 0) return;  // blocks and out may be null for an empty tensor
  const auto* b = static_cast<const uint8_t*>(blocks);
  int64_t nb = n / info->block_size;
  switch (type) {
    case GgmlType::F32:
      std::memcpy(out, b, size_t(n) * 4);
      return;
    case GgmlType::F16:
      convert_to_f32(b, DType::F16, out, size_t(n));
      return;
    case GgmlType::BF16:
      convert_to_f32(b, DType::BF16, out, size_t(n));
      return;
    case GgmlType::Q4_0:
      dequant_q4_0(b, out, nb);
      return;
    case GgmlType::Q4_1:
      dequant_q4_1(b, out, nb);
      return;
    case GgmlType::Q5_0:
      dequant_q5_0(b, out, nb);
      return;
    case GgmlType::Q5_1:
      dequant_q5_1(b, out, nb);
      return;
    case GgmlType::Q8_0:
      dequant_q8_0(b, out, nb);
      return;
    case GgmlType::Q4_K:
      dequant_q4_k(b, out, nb);
      return;
    case GgmlType::Q5_K:
      dequant_q5_k(b, out, nb);
      return;
    case GgmlType::Q6_K:
      dequant_q6_k(b, out, nb);
      return;
    case GgmlType::Q8_K:
      dequant_q8_k(b, out, nb);
      return;
    default:
      break;
  }
  fail("dequantize: GGML type {} is marked supported but has no kernel", info->name);
}

}  // namespace zoft
