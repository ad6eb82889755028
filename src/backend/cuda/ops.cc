// The cuda:: ops other than linear: argument checks (same messages as the CPU backend), then one
// kernel launch on the context's stream. Ops that validate ids on the device read one int64
// back and throw from here.
#include "backend/cuda/ops.h"

#include <cstdint>
#include <limits>

#include "backend/cuda/check.h"
#include "backend/cuda/context.h"
#include "backend/cuda/kernels.h"
#include "core/error.h"

namespace zoft::cuda {
namespace {

kernels::Act to_kernel(Activation kind) {
  static_assert(int(Activation::ReLU) == int(kernels::Act::ReLU) &&
                int(Activation::SiLU) == int(kernels::Act::SiLU));
  return kernels::Act(int(kind));
}

constexpr int64_t kNoneBad = std::numeric_limits<int64_t>::max();

// A device int64 set to kNoneBad, for kernels that record the first bad index with atomicMin.
struct BadIndex {
  PoolBuffer slot{context().pool, sizeof(int64_t)};

  BadIndex() {
    int64_t none = kNoneBad;  // copied before the call returns (pageable source)
    copy_to_device(slot.data(), &none, sizeof none);
  }
  int64_t* device() const { return slot.as<int64_t>(); }
  // Waits for the kernels before it; kNoneBad when every index was fine.
  int64_t read() const {
    int64_t first = 0;
    copy_to_host(&first, slot.data(), sizeof first);
    return first;
  }
};

template <class T>
T read_one(const T* device_array, int64_t index) {
  T value{};
  copy_to_host(&value, device_array + index, sizeof(T));
  return value;
}

}  // namespace

void layer_norm(const float* x, const float* gamma, const float* beta, float* out, int64_t rows,
                int64_t dim, float eps) {
  kernels::layer_norm(x, gamma, beta, out, rows, dim, eps, context().stream);
}

void rms_norm(const float* x, const float* gamma, float* out, int64_t rows, int64_t dim, float eps,
              bool unit_offset) {
  kernels::rms_norm(x, gamma, out, rows, dim, eps, unit_offset ? 1.0f : 0.0f, context().stream);
}

void add_inplace(float* y, const float* x, int64_t n) {
  kernels::add_inplace(y, x, n, context().stream);
}

void activation(Activation kind, float* x, int64_t n) {
  kernels::activation(to_kernel(kind), x, n, context().stream);
}

void gated_activation(Activation kind, const float* gate, const float* up, int64_t in_row_stride,
                      float* out, int64_t rows, int64_t dim) {
  kernels::gated_activation(to_kernel(kind), gate, up, in_row_stride, out, rows, dim,
                            context().stream);
}

void rope(float* x, const int32_t* positions, int64_t rows, int64_t heads, int64_t head_dim,
          int64_t rotary_dim, const float* inv_freq, float attention_scaling) {
  ZOFT_CHECK(rotary_dim % 2 == 0 && rotary_dim <= head_dim,
             "rope: rotary_dim {} must be even and at most head_dim {}", rotary_dim, head_dim);
  kernels::rope(x, positions, rows, heads, head_dim, rotary_dim, inv_freq, attention_scaling,
                context().stream);
}

void attention(const float* q, const float* k, const float* v, const uint8_t* key_valid, float* out,
               const AttentionShape& shape, float scale, int64_t window, float softcap) {
  check_attention_shape(shape);
  ZOFT_CHECK(shape.head_dim <= kernels::kMaxHeadDim,
             "attention: head_dim {} is above the CUDA kernel's limit of {}", shape.head_dim,
             kernels::kMaxHeadDim);
  if (shape.batch == 0 || shape.q_len == 0 || shape.q_heads == 0 || shape.head_dim == 0) return;
  ZOFT_CHECK(shape.q_heads <= 65535 && shape.batch <= 65535,
             "attention: {} heads x {} sequences exceed the CUDA grid", shape.q_heads, shape.batch);
  kernels::AttentionArgs a{q,
                           k,
                           v,
                           key_valid,
                           out,
                           shape.batch,
                           shape.q_len,
                           shape.kv_len,
                           shape.kv_capacity,
                           shape.q_heads,
                           shape.kv_heads,
                           shape.head_dim,
                           scale,
                           window,
                           softcap};
  kernels::attention(a, context().stream);
}

void softcap(float* x, int64_t n, float cap) {
  kernels::softcap(x, n, cap, context().stream);
}

void embedding(const DeviceMatrix& table, const int32_t* ids, int64_t rows, float scale,
               float* out) {
  ZOFT_CHECK(table.dtype == DType::F32 || table.dtype == DType::BF16 || table.dtype == DType::F16,
             "embedding: table dtype {} is not supported", dtype_name(table.dtype));
  if (rows == 0) return;
  const int64_t vocab = table.rows;
  BadIndex bad;
  kernels::find_bad_ids(ids, rows, vocab, bad.device(), context().stream);
  if (int64_t r = bad.read(); r != kNoneBad)
    fail(
        "embedding: token id {} at position {} is outside the vocabulary of {} tokens "
        "(does the tokenizer match the model?)",
        read_one(ids, r), r, vocab);
  const int dtype = table.dtype == DType::F32 ? 0 : table.dtype == DType::BF16 ? 1 : 2;
  kernels::embedding(table.data, dtype, table.cols, ids, rows, scale, out, context().stream);
}

void cross_entropy(const float* logits, const int32_t* targets, int64_t rows, int64_t vocab,
                   float* loss) {
  if (rows == 0) return;
  BadIndex bad;
  kernels::cross_entropy(logits, targets, rows, vocab, loss, bad.device(), context().stream);
  if (int64_t r = bad.read(); r != kNoneBad)
    fail("cross_entropy: target {} at row {} is outside the {} logits", read_one(targets, r), r,
         vocab);
}

void candidate_log_probs(const float* logits, int64_t rows, int64_t vocab,
                         const int32_t* candidates, int64_t n_candidates, float* out) {
  if (rows == 0 || n_candidates == 0) return;
  BadIndex bad;
  kernels::candidate_log_probs(logits, rows, vocab, candidates, n_candidates, out, bad.device(),
                               context().stream);
  if (int64_t i = bad.read(); i != kNoneBad)
    fail("candidate_log_probs: candidate {} of row {} is token {}, outside the {} logits",
         i % n_candidates, i / n_candidates, read_one(candidates, i), vocab);
}

}  // namespace zoft::cuda
