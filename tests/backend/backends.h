// The implementations the op tests compare with the reference, behind one host-pointer
// interface: a CUDA adapter copies inputs to the device, calls cuda::op and copies back.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "backend/ops.h"

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

// Factories by name. "cpu" is built in; the CUDA adapter (a tests/backend/*_test.cc file built
// with ZOFT_CUDA) adds "cuda" from a static initializer, returning nullptr when no GPU is
// visible.
using BackendFactory = std::unique_ptr<OpsBackend> (*)();

inline std::map<std::string, BackendFactory>& backend_registry() {
  static std::map<std::string, BackendFactory> registry{
      {"cpu", []() -> std::unique_ptr<OpsBackend> { return std::make_unique<CpuBackend>(); }}};
  return registry;
}

// nullptr (the test skips) when that backend is not built or has no device.
inline std::unique_ptr<OpsBackend> make_backend(const std::string& name) {
  auto it = backend_registry().find(name);
  return it == backend_registry().end() ? nullptr : it->second();
}

}  // namespace zoft::testing
