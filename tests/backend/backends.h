// The implementations the op tests compare with the reference, behind one host-pointer
// interface: each backend stages the inputs on its device, calls the dispatched ops:: entry
// point (backend/ops.h) and copies the results back.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backend/cpu/isa.h"
#include "backend/ops.h"
#include "core/error.h"

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
                         float* out, const AttentionShape& shape, float scale, int64_t window,
                         float softcap) = 0;
  virtual void softcap(float* x, int64_t n, float cap) = 0;
  virtual void embedding(const Tensor& table, const int32_t* ids, int64_t rows, float scale,
                         float* out) = 0;
  virtual void cross_entropy(const float* logits, const int32_t* targets, int64_t rows,
                             int64_t vocab, float* loss) = 0;
};

// Host pointers in; the arguments staged into memory of `device` (DeviceBuffer, ops::upload),
// the dispatched ops:: entry point called there (backend/ops.h, dispatch.cc), the results
// copied back (which waits for the op). The CPU takes the same path as the GPU, so the test of
// an op is the test of its dispatch too.
class DeviceBufferArg {
 public:
  DeviceBufferArg(Device device, const void* host, size_t bytes)
      : buffer_(device, bytes), bytes_(bytes) {
    if (host) ops::upload(device, buffer_.data(), host, bytes);
  }
  template <class T>
  T* as() const {
    return bytes_ ? buffer_.as<T>() : nullptr;  // a null argument stays null
  }
  void read_into(void* host) const {
    ops::download(buffer_.device(), host, buffer_.data(), bytes_);
  }

 private:
  DeviceBuffer buffer_;
  size_t bytes_;
};

class DispatchBackend : public OpsBackend {
 public:
  explicit DispatchBackend(Device device) : d_(device) {}

  void linear(const float* x, int64_t M, int64_t K, const Tensor& w, bool kn, const float* bias,
              float* y) override {
    // OpsBackend::linear has cpu::linear's contract (f32 / bf16 weights); cuda::linear's f16
    // weights are tested in tests/gpu/.
    ZOFT_CHECK(w.ndim == 2 && w.is_contiguous(), "linear: weight must be a contiguous 2-d tensor");
    ZOFT_CHECK(w.dtype == DType::F32 || w.dtype == DType::BF16,
               "linear: weight dtype {} is not supported (f32 or bf16)", dtype_name(w.dtype));
    const int64_t N = kn ? w.dim(1) : w.dim(0);
    Arg dx(d_, x, floats(M * K)), dw(d_, w.data, w.nbytes()), db(d_, bias, bias ? floats(N) : 0);
    Arg dy(d_, nullptr, floats(M * N));
    ops::linear(dx.as<float>(), M, K, on_device(w, dw), kn, db.as<float>(), dy.as<float>());
    dy.read_into(y);
  }
  void layer_norm(const float* x, const float* gamma, const float* beta, float* out, int64_t rows,
                  int64_t dim, float eps) override {
    Arg dx(d_, x, floats(rows * dim)), dg(d_, gamma, floats(dim));
    Arg db(d_, beta, beta ? floats(dim) : 0);
    Arg dout(d_, nullptr, out == x ? 0 : floats(rows * dim));
    float* o = out == x ? dx.as<float>() : dout.as<float>();
    ops::layer_norm(d_, dx.as<float>(), dg.as<float>(), db.as<float>(), o, rows, dim, eps);
    (out == x ? dx : dout).read_into(out);
  }
  void rms_norm(const float* x, const float* gamma, float* out, int64_t rows, int64_t dim,
                float eps, bool unit_offset) override {
    Arg dx(d_, x, floats(rows * dim)), dg(d_, gamma, floats(dim));
    Arg dout(d_, nullptr, out == x ? 0 : floats(rows * dim));
    float* o = out == x ? dx.as<float>() : dout.as<float>();
    ops::rms_norm(d_, dx.as<float>(), dg.as<float>(), o, rows, dim, eps, unit_offset);
    (out == x ? dx : dout).read_into(out);
  }
  void add_inplace(float* y, const float* x, int64_t n) override {
    Arg dy(d_, y, floats(n)), dx(d_, x, floats(n));
    ops::add_inplace(d_, dy.as<float>(), dx.as<float>(), n);
    dy.read_into(y);
  }
  void activation(Activation kind, float* x, int64_t n) override {
    Arg dx(d_, x, floats(n));
    ops::activation(d_, kind, dx.as<float>(), n);
    dx.read_into(x);
  }
  void gated_activation(Activation kind, const float* gate, const float* up, int64_t stride,
                        float* out, int64_t rows, int64_t dim) override {
    const size_t span = rows == 0 ? 0 : floats((rows - 1) * stride + dim);  // last row ends
    Arg dg(d_, gate, span), du(d_, up, span), dout(d_, nullptr, floats(rows * dim));
    ops::gated_activation(d_, kind, dg.as<float>(), du.as<float>(), stride, dout.as<float>(), rows,
                          dim);
    dout.read_into(out);
  }
  void rope(float* x, const int32_t* positions, int64_t rows, int64_t heads, int64_t head_dim,
            int64_t rotary_dim, const float* inv_freq, float scaling) override {
    Arg dx(d_, x, floats(rows * heads * head_dim)), dp(d_, positions, 4 * size_t(rows));
    Arg df(d_, inv_freq, floats(rotary_dim / 2));
    ops::rope(d_, dx.as<float>(), dp.as<int32_t>(), rows, heads, head_dim, rotary_dim,
              df.as<float>(), scaling);
    dx.read_into(x);
  }
  void attention(const float* q, const float* k, const float* v, const uint8_t* key_valid,
                 float* out, const AttentionShape& s, float scale, int64_t window,
                 float softcap) override {
    const int64_t q_size = s.batch * s.q_len * s.q_heads * s.head_dim;
    const int64_t kv_size = s.batch * s.kv_capacity * s.kv_heads * s.head_dim;
    Arg dq(d_, q, floats(q_size)), dk(d_, k, floats(kv_size)), dv(d_, v, floats(kv_size));
    Arg dm(d_, key_valid, key_valid ? size_t(s.batch * s.kv_len) : 0);
    Arg dout(d_, nullptr, floats(q_size));
    ops::attention(d_, dq.as<float>(), dk.as<float>(), dv.as<float>(), dm.as<uint8_t>(),
                   dout.as<float>(), s, scale, window, softcap);
    dout.read_into(out);
  }
  void softcap(float* x, int64_t n, float cap) override {
    Arg dx(d_, x, floats(n));
    ops::softcap(d_, dx.as<float>(), n, cap);
    dx.read_into(x);
  }
  void embedding(const Tensor& table, const int32_t* ids, int64_t rows, float scale,
                 float* out) override {
    ZOFT_CHECK(table.ndim == 2 && table.is_contiguous(), "embedding: table must be 2-d");
    Arg dt(d_, table.data, table.nbytes()), di(d_, ids, 4 * size_t(rows));
    Arg dout(d_, nullptr, floats(rows * table.dim(1)));
    ops::embedding(on_device(table, dt), di.as<int32_t>(), rows, scale, dout.as<float>());
    dout.read_into(out);
  }
  void cross_entropy(const float* logits, const int32_t* targets, int64_t rows, int64_t vocab,
                     float* loss) override {
    Arg dl(d_, logits, floats(rows * vocab)), dt(d_, targets, 4 * size_t(rows));
    Arg dloss(d_, nullptr, floats(rows));
    ops::cross_entropy(d_, dl.as<float>(), dt.as<int32_t>(), rows, vocab, dloss.as<float>());
    dloss.read_into(loss);
  }

 private:
  using Arg = DeviceBufferArg;
  static size_t floats(int64_t n) { return sizeof(float) * size_t(n); }
  // The host tensor's view with its data in `copy` (on this backend's device).
  Tensor on_device(const Tensor& host, const Arg& copy) const {
    Tensor t = host;
    t.data = copy.as<void>();
    t.device = d_;
    return t;
  }

  Device d_;
};

// Runs the CPU ops on one kernel path (backend/cpu/isa.h) for as long as it lives.
class ScopedIsa {
 public:
  explicit ScopedIsa(cpu::Isa isa) : previous_(cpu::active_isa()) { cpu::set_isa(isa); }
  ~ScopedIsa() { cpu::set_isa(previous_); }
  ScopedIsa(const ScopedIsa&) = delete;
  ScopedIsa& operator=(const ScopedIsa&) = delete;

 private:
  cpu::Isa previous_;
};

// The paths this machine and build can run.
inline std::vector<cpu::Isa> available_isas() {
  std::vector<cpu::Isa> out;
  for (cpu::Isa isa : cpu::all_isas())
    if (cpu::isa_unavailable(isa).empty()) out.push_back(isa);
  return out;
}

// The CPU backend forced onto one path: "cpu_avx2", "cpu_avx512", ... (nullptr, so the test
// skips, where this CPU or build cannot run it).
class CpuIsaBackend final : public DispatchBackend {
 public:
  explicit CpuIsaBackend(cpu::Isa isa) : DispatchBackend(Device::CPU), scope_(isa) {}

 private:
  ScopedIsa scope_;
};

template <cpu::Isa isa>
std::unique_ptr<OpsBackend> make_cpu_isa_backend() {
  if (!cpu::isa_unavailable(isa).empty()) return nullptr;
  return std::make_unique<CpuIsaBackend>(isa);
}

// Factories by name: "cpu", and "cuda", which returns nullptr (the test skips) when this build
// has no CUDA backend or cudaGetDeviceCount sees no GPU.
using BackendFactory = std::unique_ptr<OpsBackend> (*)();

inline std::map<std::string, BackendFactory>& backend_registry() {
  static std::map<std::string, BackendFactory> registry{
      {"cpu",
       []() -> std::unique_ptr<OpsBackend> {
         return std::make_unique<DispatchBackend>(Device::CPU);
       }},
      {"cpu_avx2", make_cpu_isa_backend<cpu::Isa::avx2>},
      {"cpu_avx512", make_cpu_isa_backend<cpu::Isa::avx512>},
      {"cpu_avx512_bf16", make_cpu_isa_backend<cpu::Isa::avx512_bf16>},
      {"cpu_onednn", make_cpu_isa_backend<cpu::Isa::onednn>},
      {"cpu_amx", make_cpu_isa_backend<cpu::Isa::amx>},
      {"cuda",
       []() -> std::unique_ptr<OpsBackend> {
         if (!ops::available(Device::CUDA)) return nullptr;
         return std::make_unique<DispatchBackend>(Device::CUDA);
       }},
  };
  return registry;
}

// nullptr (the test skips) when that backend is not built or has no device.
inline std::unique_ptr<OpsBackend> make_backend(const std::string& name) {
  auto it = backend_registry().find(name);
  return it == backend_registry().end() ? nullptr : it->second();
}

}  // namespace zoft::testing
