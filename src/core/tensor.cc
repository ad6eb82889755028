#include "core/tensor.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "core/error.h"

namespace zoft {

static void set_contiguous_strides(Tensor& t) {
  int64_t s = 1;
  for (int i = t.ndim - 1; i >= 0; --i) {
    t.stride[i] = s;
    s *= t.shape[i];
  }
}

Tensor::Tensor(void* data_, DType dtype_, std::initializer_list<int64_t> dims)
    : data(data_), dtype(dtype_), ndim(int(dims.size())) {
  ZOFT_CHECK(ndim <= kMaxDims, "tensor of {} dimensions: at most {} are supported", ndim, kMaxDims);
  int i = 0;
  for (int64_t d : dims) shape[i++] = d;
  set_contiguous_strides(*this);
}

Tensor Tensor::with_shape(void* data, DType dtype, const int64_t* dims, int ndim) {
  ZOFT_CHECK(ndim >= 0 && ndim <= kMaxDims, "tensor of {} dimensions: at most {} are supported",
             ndim, kMaxDims);
  Tensor t;
  t.data = data;
  t.dtype = dtype;
  t.ndim = ndim;
  for (int i = 0; i < ndim; ++i) t.shape[i] = dims[i];
  set_contiguous_strides(t);
  return t;
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int i = 0; i < ndim; ++i) n *= shape[i];
  return n;
}

bool Tensor::is_contiguous() const {
  int64_t s = 1;
  for (int i = ndim - 1; i >= 0; --i) {
    if (shape[i] != 1 && stride[i] != s) return false;
    s *= shape[i];
  }
  return true;
}

const char* device_name(Device device) {
  return device == Device::CUDA ? "cuda" : "cpu";
}

Device parse_device(const std::string& name) {
  if (name == "cpu") return Device::CPU;
  if (name == "cuda") return Device::CUDA;
  fail("device '{}' is not known: use cpu or cuda", name);
}

std::string Tensor::shape_string() const {
  std::string s = "[";
  for (int i = 0; i < ndim; ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

Buffer::Buffer(size_t bytes) : size_(bytes) {
  if (bytes == 0) return;
  size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) fail("out of memory allocating {} bytes", bytes);
  data_.reset(p);
}

void Buffer::Free::operator()(void* p) const {
  std::free(p);
}

OwnedTensor OwnedTensor::zeros(DType dtype, std::initializer_list<int64_t> dims) {
  OwnedTensor t;
  t.view = Tensor(nullptr, dtype, dims);
  t.buffer = Buffer(t.view.nbytes());
  if (t.view.nbytes()) std::memset(t.buffer.data(), 0, t.view.nbytes());
  t.view.data = t.buffer.data();
  return t;
}

}  // namespace zoft
