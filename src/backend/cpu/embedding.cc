// embedding: rows of a [vocab, dim] table (f32 / bf16 / f16) gathered and scaled to f32.
#include "backend/cpu/op_kernels.h"
#include "backend/cpu/parallel.h"
#include "backend/cpu/simd.h"
#include "core/error.h"

#if !defined(ZOFT_OPS_ISA)
#error "embedding.cc is compiled once per instruction set (CMakeLists.txt, zoft_ops_<copy>)"
#endif

namespace zoft::cpu::detail::ZOFT_OPS_ISA {
// Internal linkage, for the reason in tools/check_isa_objects.py.
namespace {

// out[i] = f32(src[i]) * scale for one row.
static void widen_row(const void* src, DType dtype, float scale, float* out, int64_t dim) {
#if defined(__AVX512F__)
  const __m512 k = simd::splat(scale);
  for (int64_t i = 0; i < dim; i += 16) {
    __mmask16 m = simd::first_lanes(dim - i);
    __m512 v;
    if (dtype == DType::F32) {
      v = _mm512_maskz_loadu_ps(m, static_cast<const float*>(src) + i);
    } else {
      __m256i h = _mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(src) + i);
      if (dtype == DType::BF16)  // bf16 is the top half of an f32
        v = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
      else
        v = _mm512_cvtph_ps(h);
    }
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(v, k));
  }
#else
  convert_to_f32(src, dtype, out, size_t(dim));
  for (int64_t i = 0; i < dim; ++i) out[i] *= scale;
#endif
}

}  // namespace

void embedding(const Tensor& table, const int32_t* ids, int64_t rows, float scale, float* out) {
  ZOFT_CHECK(table.ndim == 2 && table.is_contiguous(),
             "embedding: table must be a contiguous [vocab, dim] tensor, got {}",
             table.shape_string());
  const int64_t vocab = table.dim(0), dim = table.dim(1);
  // Check every id before writing anything, so a bad batch leaves out untouched.
  for (int64_t r = 0; r < rows; ++r)
    ZOFT_CHECK(ids[r] >= 0 && ids[r] < vocab,
               "embedding: token id {} at position {} is outside the vocabulary of {} tokens "
               "(does the tokenizer match the model?)",
               ids[r], r, vocab);
  const auto* base = static_cast<const char*>(table.data);
  const size_t row_bytes = size_t(dim) * dtype_size(table.dtype);
  parallel_items(rows, dim, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      widen_row(base + size_t(ids[r]) * row_bytes, table.dtype, scale, out + r * dim, dim);
  });
}

}  // namespace zoft::cpu::detail::ZOFT_OPS_ISA
