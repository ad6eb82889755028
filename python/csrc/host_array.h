// An engine-owned float32 result (logits, per-token losses): a zoft::Buffer that Python sees
// through the buffer protocol, so NumPy (and, through NumPy's DLPack export, PyTorch) read the
// engine's memory in place. The Python object owns the buffer; arrays viewing it keep it alive.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace zoft::python {

class HostArray {
 public:
  explicit HostArray(std::vector<int64_t> shape);

  float* data() const { return buffer_.as<float>(); }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t numel() const;
  pybind11::buffer_info buffer_info();

 private:
  std::vector<int64_t> shape_;
  Buffer buffer_;
};

void bind_host_array(pybind11::module_& m);

}  // namespace zoft::python
