#include "host_array.h"

#include <pybind11/stl.h>

#include <functional>
#include <numeric>

namespace py = pybind11;

namespace zoft::python {

HostArray::HostArray(std::vector<int64_t> shape) : shape_(std::move(shape)) {
  buffer_ = Buffer(size_t(std::max<int64_t>(numel(), 1)) * sizeof(float));
}

int64_t HostArray::numel() const {
  return std::accumulate(shape_.begin(), shape_.end(), int64_t(1), std::multiplies<>());
}

py::buffer_info HostArray::buffer_info() {
  std::vector<py::ssize_t> shape(shape_.begin(), shape_.end()), strides(shape_.size());
  py::ssize_t stride = sizeof(float);
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= shape[i];
  }
  return py::buffer_info(data(), sizeof(float), py::format_descriptor<float>::format(),
                         py::ssize_t(shape.size()), shape, strides);
}

void bind_host_array(py::module_& m) {
  py::class_<HostArray>(m, "HostArray", py::buffer_protocol(),
                        "float32 memory owned by the engine (view it with numpy.asarray)")
      .def_buffer(&HostArray::buffer_info)
      .def_property_readonly("shape", &HostArray::shape)
      .def_property_readonly(
          "data_ptr", [](const HostArray& a) { return reinterpret_cast<uintptr_t>(a.data()); },
          "the address of the first element (the same as every NumPy view's)");
}

}  // namespace zoft::python
