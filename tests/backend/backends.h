// The implementations the op tests compare with the reference, behind one host-pointer
// interface: a CUDA adapter copies inputs to the device, calls cuda::op and copies back.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "backend/ops.h"
#if defined(ZOFT_CUDA)
#include <vector>

#include "backend/cuda/context.h"
#include "core/error.h"
#endif

namespace zoft::testing {

class OpsBackend {
 public:
  virtual ~OpsBackend() = default;
  virtual void linear(const float* x, int64_t M, int64_t K, const Tensor& weight, bool weight_is_kn,
                      const float* bias, float* y) = 0;
  virtual void layer_norm(const float* x, const float* gamma, const float* beta, float* out,
                          int64_t rows, int64_t dim, float eps) = 0;
  virtual void rms_norm(const float* x, const float* gamma, float* out, int64_t rows, int64_t dim,
                        float eps, bool unit_offset) = 0;
  virtual void add_inplace(float* y, const float* x, int64_t n) = 0;
  virtual void activation(Activation kind, float* x, int64_t n) = 0;
  virtual void gated_activation(Activation kind, const float* gate, const float* up,
                                int64_t in_row_stride, float* out, int64_t rows, int64_t dim) = 0;
  virtual void rope(float* x, const int32_t* positions, int64_t rows, int64_t heads,
                    int64_t head_dim, int64_t rotary_dim, const float* inv_freq,
                    float attention_scaling) = 0;
  virtual void attention(const float* q, const float* k, const float* v, const uint8_t* key_valid,
                         float* out, const cpu::AttentionShape& shape, float scale, int64_t window,
                         float softcap) = 0;
  virtual void softcap(float* x, int64_t n, float cap) = 0;
  virtual void embedding(const Tensor& table, const int32_t* ids, int64_t rows, float scale,
                         float* out) = 0;
  virtual void cross_entropy(const float* logits, const int32_t* targets, int64_t rows,
                             int64_t vocab, float* loss) = 0;
};

class CpuBackend final : public OpsBackend {
 public:
  void linear(const float* x, int64_t M, int64_t K, const Tensor& w, bool kn, const float* bias,
              float* y) override {
    cpu::linear(x, M, K, w, kn, bias, y);
  }
  void layer_norm(const float* x, const float* gamma, const float* beta, float* out, int64_t rows,
                  int64_t dim, float eps) override {
    cpu::layer_norm(x, gamma, beta, out, rows, dim, eps);
  }
  void rms_norm(const float* x, const float* gamma, float* out, int64_t rows, int64_t dim,
                float eps, bool unit_offset) override {
    cpu::rms_norm(x, gamma, out, rows, dim, eps, unit_offset);
  }
  void add_inplace(float* y, const float* x, int64_t n) override { cpu::add_inplace(y, x, n); }
  void activation(Activation kind, float* x, int64_t n) override { cpu::activation(kind, x, n); }
  void gated_activation(Activation kind, const float* gate, const float* up, int64_t stride,
                        float* out, int64_t rows, int64_t dim) override {
    cpu::gated_activation(kind, gate, up, stride, out, rows, dim);
  }
  void rope(float* x, const int32_t* positions, int64_t rows, int64_t heads, int64_t head_dim,
            int64_t rotary_dim, const float* inv_freq, float scaling) override {
    cpu::rope(x, positions, rows, heads, head_dim, rotary_dim, inv_freq, scaling);
  }
  void attention(const float* q, const float* k, const float* v, const uint8_t* key_valid,
                 float* out, const cpu::AttentionShape& shape, float scale, int64_t window,
                 float softcap) override {
    cpu::attention(q, k, v, key_valid, out, shape, scale, window, softcap);
  }
  void softcap(float* x, int64_t n, float cap) override { cpu::softcap(x, n, cap); }
  void embedding(const Tensor& table, const int32_t* ids, int64_t rows, float scale,
                 float* out) override {
    cpu::embedding(table, ids, rows, scale, out);
  }
  void cross_entropy(const float* logits, const int32_t* targets, int64_t rows, int64_t vocab,
                     float* loss) override {
    cpu::cross_entropy(logits, targets, rows, vocab, loss);
  }
};

#if defined(ZOFT_CUDA)
// Device memory for one argument of one call, from the context's pool: filled from the host
// (or left uninitialised for outputs) and read back into host memory.
class DeviceCopy {
 public:
  DeviceCopy(const void* host, size_t bytes) : buffer_(cuda::context().pool, bytes), bytes_(bytes) {
    if (host) cuda::copy_to_device(buffer_.data(), host, bytes);
  }
  template <class T>
  T* as() const {
    return buffer_.as<T>();
  }
  void read_into(void* host) const { cuda::copy_to_host(host, buffer_.data(), bytes_); }

 private:
  cuda::PoolBuffer buffer_;
  size_t bytes_;
};

// Host pointers in, cuda:: op on device copies, results copied back (which waits for the op).
class CudaBackend final : public OpsBackend {
 public:
  void linear(const float* x, int64_t M, int64_t K, const Tensor& w, bool kn, const float* bias,
              float* y) override {
    // OpsBackend::linear has cpu::linear's contract (f32 / bf16 weights); cuda::linear's f16
    // weights are tested in tests/gpu/.
    ZOFT_CHECK(w.ndim == 2 && w.is_contiguous(), "linear: weight must be a contiguous 2-d tensor");
    ZOFT_CHECK(w.dtype == DType::F32 || w.dtype == DType::BF16,
               "linear: weight dtype {} is not supported (f32 or bf16)", dtype_name(w.dtype));
    const int64_t N = kn ? w.dim(1) : w.dim(0);
    DeviceCopy dx(x, floats(M * K)), dw(w.data, w.nbytes()), db(bias, bias ? floats(N) : 0);
    DeviceCopy dy(nullptr, floats(M * N));
    cuda::linear(dx.as<float>(), M, K, {dw.as<void>(), w.dtype, w.dim(0), w.dim(1)}, kn,
                 db.as<float>(), dy.as<float>());
    dy.read_into(y);
  }
  void layer_norm(const float* x, const float* gamma, const float* beta, float* out, int64_t rows,
                  int64_t dim, float eps) override {
    DeviceCopy dx(x, floats(rows * dim)), dg(gamma, floats(dim)), db(beta, beta ? floats(dim) : 0);
    DeviceCopy dout(nullptr, out == x ? 0 : floats(rows * dim));
    float* o = out == x ? dx.as<float>() : dout.as<float>();
    cuda::layer_norm(dx.as<float>(), dg.as<float>(), db.as<float>(), o, rows, dim, eps);
    (out == x ? dx : dout).read_into(out);
  }
  void rms_norm(const float* x, const float* gamma, float* out, int64_t rows, int64_t dim,
                float eps, bool unit_offset) override {
    DeviceCopy dx(x, floats(rows * dim)), dg(gamma, floats(dim));
    DeviceCopy dout(nullptr, out == x ? 0 : floats(rows * dim));
    float* o = out == x ? dx.as<float>() : dout.as<float>();
    cuda::rms_norm(dx.as<float>(), dg.as<float>(), o, rows, dim, eps, unit_offset);
    (out == x ? dx : dout).read_into(out);
  }
  void add_inplace(float* y, const float* x, int64_t n) override {
    DeviceCopy dy(y, floats(n)), dx(x, floats(n));
    cuda::add_inplace(dy.as<float>(), dx.as<float>(), n);
    dy.read_into(y);
  }
  void activation(Activation kind, float* x, int64_t n) override {
    DeviceCopy dx(x, floats(n));
    cuda::activation(kind, dx.as<float>(), n);
    dx.read_into(x);
  }
  void gated_activation(Activation kind, const float* gate, const float* up, int64_t stride,
                        float* out, int64_t rows, int64_t dim) override {
    const size_t span = rows == 0 ? 0 : floats((rows - 1) * stride + dim);  // last row ends
    DeviceCopy dg(gate, span), du(up, span), dout(nullptr, floats(rows * dim));
    cuda::gated_activation(kind, dg.as<float>(), du.as<float>(), stride, dout.as<float>(), rows,
                           dim);
    dout.read_into(out);
  }
  void rope(float* x, const int32_t* positions, int64_t rows, int64_t heads, int64_t head_dim,
            int64_t rotary_dim, const float* inv_freq, float scaling) override {
    DeviceCopy dx(x, floats(rows * heads * head_dim)), dp(positions, 4 * size_t(rows));
    DeviceCopy df(inv_freq, floats(rotary_dim / 2));
    cuda::rope(dx.as<float>(), dp.as<int32_t>(), rows, heads, head_dim, rotary_dim, df.as<float>(),
               scaling);
    dx.read_into(x);
  }
  void attention(const float* q, const float* k, const float* v, const uint8_t* key_valid,
                 float* out, const cpu::AttentionShape& s, float scale, int64_t window,
                 float softcap) override {
    const int64_t q_size = s.batch * s.q_len * s.q_heads * s.head_dim;
    const int64_t kv_size = s.batch * s.kv_capacity * s.kv_heads * s.head_dim;
    DeviceCopy dq(q, floats(q_size)), dk(k, floats(kv_size)), dv(v, floats(kv_size));
    DeviceCopy dm(key_valid, key_valid ? size_t(s.batch * s.kv_len) : 0);
    DeviceCopy dout(nullptr, floats(q_size));
    cuda::attention(dq.as<float>(), dk.as<float>(), dv.as<float>(), dm.as<uint8_t>(),
                    dout.as<float>(), s, scale, window, softcap);
    dout.read_into(out);
  }
  void softcap(float* x, int64_t n, float cap) override {
    DeviceCopy dx(x, floats(n));
    cuda::softcap(dx.as<float>(), n, cap);
    dx.read_into(x);
  }
  void embedding(const Tensor& table, const int32_t* ids, int64_t rows, float scale,
                 float* out) override {
    ZOFT_CHECK(table.ndim == 2 && table.is_contiguous(), "embedding: table must be 2-d");
    DeviceCopy dt(table.data, table.nbytes()), di(ids, 4 * size_t(rows));
    DeviceCopy dout(nullptr, floats(rows * table.dim(1)));
    cuda::embedding({dt.as<void>(), table.dtype, table.dim(0), table.dim(1)}, di.as<int32_t>(),
                    rows, scale, dout.as<float>());
    dout.read_into(out);
  }
  void cross_entropy(const float* logits, const int32_t* targets, int64_t rows, int64_t vocab,
                     float* loss) override {
    DeviceCopy dl(logits, floats(rows * vocab)), dt(targets, 4 * size_t(rows));
    DeviceCopy dloss(nullptr, floats(rows));
    cuda::cross_entropy(dl.as<float>(), dt.as<int32_t>(), rows, vocab, dloss.as<float>());
    dloss.read_into(loss);
  }

 private:
  static size_t floats(int64_t n) { return sizeof(float) * size_t(n); }
};
#endif

// Factories by name: "cpu", and "cuda" in builds with ZOFT_CUDA, which returns nullptr (the
// test skips) when cudaGetDeviceCount sees no GPU.
using BackendFactory = std::unique_ptr<OpsBackend> (*)();

inline std::map<std::string, BackendFactory>& backend_registry() {
  static std::map<std::string, BackendFactory> registry {
    {"cpu", []() -> std::unique_ptr<OpsBackend> { return std::make_unique<CpuBackend>(); }},
#if defined(ZOFT_CUDA)
        {"cuda", []() -> std::unique_ptr<OpsBackend> {
           if (!cuda::device_available()) return nullptr;
           return std::make_unique<CudaBackend>();
         }},
#endif
  };
  return registry;
}

// nullptr (the test skips) when that backend is not built or has no device.
inline std::unique_ptr<OpsBackend> make_backend(const std::string& name) {
  auto it = backend_registry().find(name);
  return it == backend_registry().end() ? nullptr : it->second();
}

}  // namespace zoft::testing
