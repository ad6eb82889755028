// Internal to backend/cpu: one attention call's arguments with the indexing of q / k / v / out
// and the masking rules in one place (cpu::attention's contract, ops.h), shared by the f32
// kernels (attention.cc) and the AMX one (attention_amx.cc).
#pragma once

#include <algorithm>
#include <cstdint>

#include "backend/op_types.h"

namespace zoft::cpu::detail::attention {
// Internal linkage in every file that includes it, for the reason in tools/check_isa_objects.py.
namespace {

// The arguments of one call, with the indexing of q / k / v / out in one place.
struct Problem {
  const float *q, *k, *v;
  const uint8_t* key_valid;
  float* out;
  AttentionShape s;
  float scale;
  int64_t window;
  float softcap;
  int64_t q_offset;

  int64_t q_index(int64_t b, int64_t t, int64_t h) const {
    return ((b * s.q_len + t) * s.q_heads + h) * s.head_dim;
  }
  int64_t kv_index(int64_t b, int64_t key, int64_t hk) const {
    return ((b * s.kv_capacity + key) * s.kv_heads + hk) * s.head_dim;
  }
  bool valid(int64_t b, int64_t key) const {
    return !key_valid || key_valid[b * s.kv_len + key] != 0;
  }
  // Keys [lo, hi] that query position qp may see by position (causal and window).
  int64_t first_key(int64_t qp) const {
    return window > 0 ? std::max<int64_t>(0, qp - window + 1) : 0;
  }
};

}  // namespace
}  // namespace zoft::cpu::detail::attention
