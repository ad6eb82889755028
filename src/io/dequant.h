// GGML tensor types (the element types of GGUF files) and their dequantisation to f32.
//
// Quantised types store a row as consecutive blocks of block_size elements in type_size bytes;
// a row never splits a block. The table covers every type id that GGUF writers emit so that a
// file holding a type we cannot dequantise still opens (its size is checked); dequantising
// such a tensor fails with a clear error instead.
#pragma once

#include <cstddef>
#include <cstdint>

namespace zoft {

// Values are the ids stored in GGUF tensor infos (ggml.h's enum ggml_type); never renumber.
enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
};

struct GgmlTypeInfo {
  const char* name;    // "Q4_K", as llama.cpp and gguf-py print it
  int64_t block_size;  // elements per block (1 for plain types)
  int64_t type_size;   // bytes per block
  bool dequantizable;  // dequantize_row() supports it
};

// nullptr for an id this reader does not know.
const GgmlTypeInfo* ggml_type_info(uint32_t id);
// Never null for a GgmlType value; "unknown" otherwise.
const char* ggml_type_name(GgmlType type);
bool ggml_can_dequantize(GgmlType type);

// Converts n elements (a multiple of the type's block size) stored as consecutive blocks at
// `blocks` to f32. Single-threaded; callers split large tensors by blocks. Throws Error for a
// type that cannot be dequantised or an n that is not a whole number of blocks.
void dequantize_row(GgmlType type, const void* blocks, float* out, int64_t n);

}  // namespace zoft
