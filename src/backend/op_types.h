// The types the ops of every backend share (backend/ops.h declares the ops).
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace zoft {

enum class Activation : uint8_t {
  ReLU,
  GeluErf,   // 0.5 x (1 + erf(x / sqrt 2))            HF "gelu"
  GeluTanh,  // 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3)))  HF "gelu_new", "gelu_pytorch_tanh"
  SiLU,      // x * sigmoid(x)                        HF "silu"
};

// The extent of one attention call (q_len, kv_len, heads, head_dim); see ops::attention.
struct AttentionShape {
  int64_t batch = 1;
  int64_t q_len = 1;        // T: queries per sequence
  int64_t kv_len = 1;       // S: keys in use per sequence, S = q_offset + T
  int64_t kv_capacity = 1;  // rows allocated per sequence in k / v (>= kv_len)
  int64_t q_heads = 1;
  int64_t kv_heads = 1;  // q_heads % kv_heads == 0 (grouped-query attention)
  int64_t head_dim = 1;
  // The caller accepts q.k and p.v from bf16-rounded operands (summed in f32), as a bf16 model's
  // forward computes them in HF transformers: the amx CPU path then runs attention on AMX tiles.
  // Left false for f32 models and for forwards whose backward follows (that recomputes in f32).
  bool bf16_products = false;
};

// Throws Error unless the heads group evenly and q_len <= kv_len <= kv_capacity (every backend's
// attention checks its shape with this).
void check_attention_shape(const AttentionShape& shape);

}  // namespace zoft
