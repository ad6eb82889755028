// Shared by the optim tests: parameters held in owned buffers, gradients from float vectors.
#pragma once

#include <cstring>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/io_test_util.h"
#include "model/parameters.h"

namespace zoft::optim::testing {

using zoft::testing::expect_error;
using zoft::testing::read_bytes;
using zoft::testing::TempDir;

// A parameter list as list_parameters gives it, owning its storage.
struct TestParameters {
  std::vector<OwnedTensor> storage;
  std::vector<ParameterRef> refs;

  TestParameters() = default;
  TestParameters(const TestParameters&) = delete;

  void add(const std::string& name, DType dtype, std::initializer_list<int64_t> shape, bool decay,
           const std::vector<float>& values) {
    storage.push_back(OwnedTensor::zeros(dtype, shape));
    Tensor t = storage.back().view;
    convert_from_f32(values.data(), t.data, dtype, size_t(t.numel()));
    refs.push_back({name, uint32_t(refs.size()), 0, t, decay});
  }
  std::vector<float> values(size_t i) const {
    std::vector<float> out(size_t(refs[i].tensor.numel()));
    convert_to_f32(refs[i].tensor.data, refs[i].tensor.dtype, out.data(), out.size());
    return out;
  }
  // The raw bytes of every parameter, for bit-exact comparisons.
  std::string bytes() const {
    std::string out;
    for (const auto& r : refs)
      out.append(static_cast<const char*>(r.tensor.data), r.tensor.nbytes());
    return out;
  }
};

inline Buffer buffer_of(const std::vector<float>& values) {
  Buffer b(values.size() * sizeof(float));
  if (!values.empty()) std::memcpy(b.data(), values.data(), b.size());
  return b;
}

inline std::vector<float> floats_of(const Buffer& b) {
  std::vector<float> out(b.size() / sizeof(float));
  if (!out.empty()) std::memcpy(out.data(), b.data(), b.size());
  return out;
}

}  // namespace zoft::optim::testing
