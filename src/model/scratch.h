// Grow-only scratch buffers shared by the decoder's source files.
#pragma once

#include <algorithm>

#include "backend/ops.h"
#include "core/tensor.h"

namespace zoft {

// Makes `buffer` hold at least `floats` floats (contents are not kept when it grows).
inline float* ensure_floats(Buffer& buffer, int64_t floats) {
  size_t bytes = size_t(std::max<int64_t>(floats, 1)) * sizeof(float);
  if (buffer.size() < bytes) buffer = Buffer(bytes);
  return buffer.as<float>();
}

// The same for memory on `device` (reallocated there when it was elsewhere).
inline float* ensure_floats(DeviceBuffer& buffer, Device device, int64_t floats) {
  size_t bytes = size_t(std::max<int64_t>(floats, 1)) * sizeof(float);
  if (buffer.size() < bytes || buffer.device() != device) {
    buffer = DeviceBuffer();  // back to the pool first, so that a growing buffer can reuse it
    buffer = DeviceBuffer(device, bytes);
  }
  return buffer.as<float>();
}

}  // namespace zoft
