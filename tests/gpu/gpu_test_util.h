// Shared by the GPU tests: the skip when there is no device, and device arrays for tests.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "backend/cuda/context.h"
#include "backend/cuda/ops.h"

// Every test that touches the device starts with this: without a GPU the test reports itself
// skipped (the suite stays green on CPU-only machines with the CUDA toolkit).
#define ZOFT_REQUIRE_GPU()                                                                    \
  do {                                                                                        \
    if (!::zoft::cuda::device_available())                                                    \
      GTEST_SKIP() << "no CUDA device (cudaGetDeviceCount found none); GPU tests need a GPU"; \
  } while (0)

namespace zoft::testing {

// A device copy of a host vector, read back with to_host().
template <class T>
class DeviceVector {
 public:
  explicit DeviceVector(const std::vector<T>& host)
      : buffer_(cuda::context().pool, host.size() * sizeof(T)), size_(host.size()) {
    cuda::copy_to_device(buffer_.data(), host.data(), host.size() * sizeof(T));
  }
  T* data() const { return buffer_.as<T>(); }
  std::vector<T> to_host() const {
    std::vector<T> out(size_);
    cuda::copy_to_host(out.data(), buffer_.data(), size_ * sizeof(T));
    return out;
  }

 private:
  cuda::PoolBuffer buffer_;
  size_t size_;
};

inline uint32_t float_bits(float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  return b;
}

// Index of the first element whose bits differ, or -1.
template <class T>
int64_t first_difference(const std::vector<T>& a, const std::vector<T>& b) {
  if (a.size() != b.size()) return 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0) return int64_t(i);
  return -1;
}

}  // namespace zoft::testing
