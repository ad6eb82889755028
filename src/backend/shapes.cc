// Argument checks shared by the CPU and CUDA implementations of an op.
#include "backend/ops.h"
#include "core/error.h"

namespace zoft {

void check_attention_shape(const AttentionShape& shape) {
  ZOFT_CHECK(shape.kv_heads > 0 && shape.q_heads % shape.kv_heads == 0,
             "attention: {} query heads cannot share {} key/value heads", shape.q_heads,
             shape.kv_heads);
  ZOFT_CHECK(shape.q_len <= shape.kv_len && shape.kv_len <= shape.kv_capacity,
             "attention: need q_len ({}) <= kv_len ({}) <= kv_capacity ({})", shape.q_len,
             shape.kv_len, shape.kv_capacity);
}

}  // namespace zoft
