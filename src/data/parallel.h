// parallel_for for work that may throw: the pool's threads must not let an exception escape,
// so each item's exception is kept and the one of the lowest index is rethrown afterwards,
// which makes the error the same for every thread count. Internal to the data layer.
#pragma once

#include <cstdint>
#include <exception>
#include <mutex>

#include "core/thread_pool.h"

namespace zoft::data {

template <class Fn>
void parallel_items(int64_t n, Fn&& fn) {
  std::mutex mutex;
  std::exception_ptr first_error;
  int64_t first_index = n;
  parallel_for(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      try {
        fn(i);
      } catch (...) {
        std::lock_guard lock(mutex);
        if (i < first_index) first_index = i, first_error = std::current_exception();
        return;  // the rest of this range cannot hold a lower index
      }
    }
  });
  if (first_error) std::rethrow_exception(first_error);
}

}  // namespace zoft::data
