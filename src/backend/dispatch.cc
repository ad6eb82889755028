// ops:: -> cpu:: or cuda:: by device. The only place in the engine that knows whether this build
// has a CUDA backend: a CUDA tensor in a CPU-only build is refused here with one clear line.
#include <cstring>

#include "backend/cpu/ops.h"
#include "backend/ops.h"
#include "core/error.h"

#if defined(ZOFT_CUDA)
#include "backend/cuda/check.h"
#include "backend/cuda/context.h"
#include "backend/cuda/ops.h"
#endif

namespace zoft {

namespace {

#if defined(ZOFT_CUDA)
cuda::DeviceMatrix device_matrix(const Tensor& t, const char* op) {
  ZOFT_CHECK(t.ndim == 2 && t.is_contiguous(), "{}: the weight must be a contiguous 2-d tensor",
             op);
  return {t.data, t.dtype, t.dim(0), t.dim(1)};
}
#else
[[noreturn]] void no_cuda() {
  fail(
      "a tensor is on the cuda device, but this build has no CUDA backend (rebuild with "
      "-DZOFT_CUDA=ON and the CUDA toolkit)");
}
#endif

}  // namespace

// Each op: the CPU first (the common case costs one compare), then the GPU or a clear error.
#if defined(ZOFT_CUDA)
#define ZOFT_DISPATCH(device, cpu_call, cuda_call) \
  do {                                             \
    if ((device) == Device::CPU) {                 \
      cpu_call;                                    \
    } else {                                       \
      cuda_call;                                   \
    }                                              \
  } while (0)
#else
#define ZOFT_DISPATCH(device, cpu_call, cuda_call) \
  do {                                             \
    if ((device) == Device::CPU) {                 \
      cpu_call;                                    \
    } else {                                       \
      no_cuda();                                   \
    }                                              \
  } while (0)
#endif

namespace ops {

bool available(Device device) {
  if (device == Device::CPU) return true;
#if defined(ZOFT_CUDA)
  return cuda::device_available();
#else
  return false;
#endif
}

const char* unavailable_reason(Device device) {
  if (available(device)) return "";
#if defined(ZOFT_CUDA)
  return "no CUDA device found (cudaGetDeviceCount reports none)";
#else
  return "this build has no CUDA backend (rebuild with -DZOFT_CUDA=ON and the CUDA toolkit)";
#endif
}

void linear(const float* x, int64_t M, int64_t K, const Tensor& weight, bool weight_is_kn,
            const float* bias, float* y) {
  ZOFT_DISPATCH(weight.device, cpu::linear(x, M, K, weight, weight_is_kn, bias, y),
                cuda::linear(x, M, K, device_matrix(weight, "linear"), weight_is_kn, bias, y));
}

void layer_norm(Device device, const float* x, const float* gamma, const float* beta, float* out,
                int64_t rows, int64_t dim, float eps) {
  ZOFT_DISPATCH(device, cpu::layer_norm(x, gamma, beta, out, rows, dim, eps),
                cuda::layer_norm(x, gamma, beta, out, rows, dim, eps));
}

void rms_norm(Device device, const float* x, const float* gamma, float* out, int64_t rows,
              int64_t dim, float eps, bool unit_offset) {
  ZOFT_DISPATCH(device, cpu::rms_norm(x, gamma, out, rows, dim, eps, unit_offset),
                cuda::rms_norm(x, gamma, out, rows, dim, eps, unit_offset));
}

void add_inplace(Device device, float* y, const float* x, int64_t n) {
  ZOFT_DISPATCH(device, cpu::add_inplace(y, x, n), cuda::add_inplace(y, x, n));
}

void activation(Device device, Activation kind, float* x, int64_t n) {
  ZOFT_DISPATCH(device, cpu::activation(kind, x, n), cuda::activation(kind, x, n));
}

void gated_activation(Device device, Activation kind, const float* gate, const float* up,
                      int64_t in_row_stride, float* out, int64_t rows, int64_t dim) {
  ZOFT_DISPATCH(device, cpu::gated_activation(kind, gate, up, in_row_stride, out, rows, dim),
                cuda::gated_activation(kind, gate, up, in_row_stride, out, rows, dim));
}

void rope(Device device, float* x, const int32_t* positions, int64_t rows, int64_t heads,
          int64_t head_dim, int64_t rotary_dim, const float* inv_freq, float attention_scaling) {
  ZOFT_DISPATCH(
      device,
      cpu::rope(x, positions, rows, heads, head_dim, rotary_dim, inv_freq, attention_scaling),
      cuda::rope(x, positions, rows, heads, head_dim, rotary_dim, inv_freq, attention_scaling));
}

void attention(Device device, const float* q, const float* k, const float* v,
               const uint8_t* key_valid, float* out, const AttentionShape& shape, float scale,
               int64_t window, float softcap) {
  ZOFT_DISPATCH(device, cpu::attention(q, k, v, key_valid, out, shape, scale, window, softcap),
                cuda::attention(q, k, v, key_valid, out, shape, scale, window, softcap));
}

void softcap(Device device, float* x, int64_t n, float cap) {
  ZOFT_DISPATCH(device, cpu::softcap(x, n, cap), cuda::softcap(x, n, cap));
}

void embedding(const Tensor& table, const int32_t* ids, int64_t rows, float scale, float* out) {
  ZOFT_DISPATCH(table.device, cpu::embedding(table, ids, rows, scale, out),
                cuda::embedding(device_matrix(table, "embedding"), ids, rows, scale, out));
}

void cross_entropy(Device device, const float* logits, const int32_t* targets, int64_t rows,
                   int64_t vocab, float* loss) {
  ZOFT_DISPATCH(device, cpu::cross_entropy(logits, targets, rows, vocab, loss),
                cuda::cross_entropy(logits, targets, rows, vocab, loss));
}

void copy(Device device, void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  ZOFT_DISPATCH(device, std::memcpy(dst, src, bytes),
                ZOFT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice,
                                                cuda::context().stream)));
}

void copy_rows(Device device, void* dst, size_t dst_pitch, const void* src, size_t src_pitch,
               size_t row_bytes, int64_t rows) {
  if (rows == 0 || row_bytes == 0) return;
  auto host_rows = [&] {
    for (int64_t r = 0; r < rows; ++r)
      std::memcpy(static_cast<char*>(dst) + size_t(r) * dst_pitch,
                  static_cast<const char*>(src) + size_t(r) * src_pitch, row_bytes);
  };
  ZOFT_DISPATCH(
      device, host_rows(),
      ZOFT_CUDA_CHECK(cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, row_bytes, size_t(rows),
                                        cudaMemcpyDeviceToDevice, cuda::context().stream)));
}

void upload(Device device, void* dst, const void* host_src, size_t bytes) {
  if (bytes == 0) return;
  ZOFT_DISPATCH(device, std::memcpy(dst, host_src, bytes),
                cuda::copy_to_device(dst, host_src, bytes));
}

void download(Device device, void* host_dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  ZOFT_DISPATCH(device, std::memcpy(host_dst, src, bytes),
                cuda::copy_to_host(host_dst, src, bytes));
}

void synchronize(Device device) {
  if (device == Device::CPU) return;
  ZOFT_DISPATCH(device, (void)0, cuda::synchronize());
}

size_t peak_bytes_in_use(Device device) {
  if (device == Device::CPU) return 0;
  size_t peak = 0;
  ZOFT_DISPATCH(device, (void)0, peak = cuda::context().pool.stats().peak_bytes_in_use);
  return peak;
}

}  // namespace ops

DeviceBuffer::DeviceBuffer(Device device, size_t bytes) : device_(device), size_(bytes) {
  if (device == Device::CPU) {
    auto buffer = std::make_shared<Buffer>(bytes);
    data_ = buffer->data();
    owner_ = std::move(buffer);
    return;
  }
#if defined(ZOFT_CUDA)
  auto block = std::make_shared<cuda::PoolBuffer>(cuda::context().pool, bytes);
  data_ = block->data();
  owner_ = std::move(block);
#else
  no_cuda();
#endif
}

}  // namespace zoft
