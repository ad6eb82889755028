// Tensor views (non-owning) and Buffers (owning, 64-byte aligned storage).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>

#include "core/dtype.h"

namespace zoft {

constexpr int kMaxDims = 4;

// Where a tensor's memory lives. Every op (backend/ops.h) runs where its tensors are.
enum class Device : uint8_t { CPU, CUDA };
const char* device_name(Device device);  // "cpu", "cuda"
// "cpu" or "cuda"; anything else throws Error naming the choices.
Device parse_device(const std::string& name);

// A view of memory someone else owns: an mmap-ed file, a Buffer, a device allocation.
// Strides are in elements; a freshly made view is row-major contiguous. `device` says where
// `data` points (host memory unless a placement moved the tensor, model/decoder.h to_device).
struct Tensor {
  void* data = nullptr;
  DType dtype = DType::F32;
  Device device = Device::CPU;
  int ndim = 0;
  std::array<int64_t, kMaxDims> shape{};
  std::array<int64_t, kMaxDims> stride{};

  Tensor() = default;
  Tensor(void* data, DType dtype, std::initializer_list<int64_t> dims);
  static Tensor with_shape(void* data, DType dtype, const int64_t* dims, int ndim);

  int64_t numel() const;
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype); }
  int64_t dim(int i) const { return shape[i < 0 ? ndim + i : i]; }
  bool is_contiguous() const;
  std::string shape_string() const;  // "[4096, 11008]"

  template <class T>
  T* ptr() const {
    return static_cast<T*>(data);
  }
  float* f32() const { return static_cast<float*>(data); }
};

// Owning storage, 64-byte aligned (one cache line, one AVX-512 register).
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(size_t bytes);
  Buffer(Buffer&&) noexcept = default;
  Buffer& operator=(Buffer&&) noexcept = default;

  void* data() const { return data_.get(); }
  size_t size() const { return size_; }
  template <class T>
  T* as() const {
    return static_cast<T*>(data_.get());
  }

 private:
  struct Free {
    void operator()(void* p) const;
  };
  std::unique_ptr<void, Free> data_;
  size_t size_ = 0;
};

// A Buffer together with the view that describes it.
struct OwnedTensor {
  Buffer buffer;
  Tensor view;
  static OwnedTensor zeros(DType dtype, std::initializer_list<int64_t> dims);
};

}  // namespace zoft
