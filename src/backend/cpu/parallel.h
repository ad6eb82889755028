// Internal to backend/cpu: when to use the pool.
#pragma once

#include <cstdint>
#include <functional>

#include "core/thread_pool.h"

namespace zoft::cpu {
// Internal linkage: included by the per-instruction-set copies (op_kernels.h), whose inline
// functions must not be merged with other objects' (tools/check_isa_objects.py).
namespace {

// Below this many elements of work an op runs on the calling thread: waking the pool costs
// a few microseconds, about what 32 K simple float operations take.
constexpr int64_t kInlineWork = 32 * 1024;

// body(begin, end) over items [0, n) that each cost about work_per_item element operations:
// on the pool when there is enough work, inline otherwise.
inline void parallel_items(int64_t n, int64_t work_per_item,
                           const std::function<void(int64_t, int64_t)>& body) {
  if (n <= 0) return;
  if (n == 1 || n * work_per_item < kInlineWork)
    body(0, n);
  else
    parallel_for(n, body);
}

}  // namespace
}  // namespace zoft::cpu
