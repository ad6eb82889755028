// The op interface: each op is declared once, here, as ops::xxx, and runs where its tensors are
// (backend/dispatch.cc picks the implementation: backend/cpu/ops.h on the host, backend/cuda/ops.h
// on a CUDA GPU, side by side). An op whose arguments include a weight Tensor (linear, embedding)
// runs on that tensor's device; the others take the device of their pointers as first argument.
// tests/backend/ compares every implementation with a double-precision reference through these
// entry points.
//
// Adding an op: declare it here, implement it in cpu/ and cuda/, add its case to dispatch.cc and
// its entry to the op test (tests/backend/ops_test.cc).
//
// Conventions: activations are f32, row-major, contiguous. Large weight matrices are Tensors in
// f32 or bf16; the weight dtype selects the compute mode of a GEMM (bf16 weights => inputs are
// rounded to bf16 and products are accumulated in f32, as cuBLAS / oneDNN bf16 GEMMs do). On a
// GPU, ops are enqueued on one stream and return without waiting; a copy to the host waits.
// Results of the two backends agree within float tolerance, not bit for bit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "backend/op_types.h"
#include "core/tensor.h"

namespace zoft {

namespace ops {

// True when `device` can run ops in this process: always for the CPU; for CUDA, a build with
// the CUDA backend and at least one GPU (false, without throwing, otherwise).
bool available(Device device);
// Why `device` cannot run here (a clause for an error message), or "" when it can.
const char* unavailable_reason(Device device);

// y[M,N] = x[M,K] . W^T + bias. W is [N,K] (nn.Linear), or [K,N] when weight_is_kn (GPT-2 Conv1D).
// bias may be null. W dtype f32 or bf16 (f16 too on a GPU).
void linear(const float* x, int64_t M, int64_t K, const Tensor& weight, bool weight_is_kn,
            const float* bias, float* y);

// out[r] = (x[r] - mean) / sqrt(var + eps) * gamma + beta   (beta may be null)
void layer_norm(Device device, const float* x, const float* gamma, const float* beta, float* out,
                int64_t rows, int64_t dim, float eps);

// out[r] = x[r] / sqrt(mean(x^2) + eps) * (unit_offset ? 1 + gamma : gamma)   (Gemma: unit_offset)
void rms_norm(Device device, const float* x, const float* gamma, float* out, int64_t rows,
              int64_t dim, float eps, bool unit_offset);

// y[i] += x[i]
void add_inplace(Device device, float* y, const float* x, int64_t n);

// x[i] = act(x[i])
void activation(Device device, Activation kind, float* x, int64_t n);

// out[r, j] = act(gate[r, j]) * up[r, j]; gate and up may be rows of a fused [rows, 2*dim]
// buffer, hence the separate row strides (in elements).
void gated_activation(Device device, Activation kind, const float* gate, const float* up,
                      int64_t in_row_stride, float* out, int64_t rows, int64_t dim);

// Rotary embedding in place, HF "rotate_half" layout: within each head the first rotary_dim
// elements are split into halves (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin), with
// angle = positions[r] * inv_freq[i], cos/sin multiplied by attention_scaling.
// x is [rows, heads, head_dim]; inv_freq has rotary_dim / 2 entries; all on `device`.
void rope(Device device, float* x, const int32_t* positions, int64_t rows, int64_t heads,
          int64_t head_dim, int64_t rotary_dim, const float* inv_freq, float attention_scaling);

// Causal attention without a T x T matrix (online softmax over key tiles).
// q, out: [B, T, Hq, D]; k, v: [B, kv_capacity, Hkv, D]. Query t sits at cache index
// q_offset + t with q_offset = kv_len - q_len; it sees key s iff s <= q_offset + t,
// key_valid[b * kv_len + s] != 0 (null: all valid), and, when window > 0,
// (q_offset + t) - s < window. Scores are q.k * scale, then softcap * tanh(score / softcap)
// when softcap > 0. A query that sees no key gets zeros. head_dim <= 256 on a GPU.
void attention(Device device, const float* q, const float* k, const float* v,
               const uint8_t* key_valid, float* out, const AttentionShape& shape, float scale,
               int64_t window, float softcap);

// x[i] = cap * tanh(x[i] / cap)
void softcap(Device device, float* x, int64_t n, float cap);

// out[r, :] = table[ids[r], :] * scale, table [vocab, dim] in f32 / bf16 / f16; ids and out on
// the table's device. ids outside [0, vocab) throw Error (and leave out untouched on a GPU).
void embedding(const Tensor& table, const int32_t* ids, int64_t rows, float scale, float* out);

// loss[r] = logsumexp(logits[r]) - logits[r, target[r]]; target < 0 => loss 0 (ignored).
void cross_entropy(Device device, const float* logits, const int32_t* targets, int64_t rows,
                   int64_t vocab, float* loss);

// ---- Memory: copies within a device and across the bus (host memory on the other side) ----

// dst[0, bytes) = src[0, bytes), both on `device`.
void copy(Device device, void* dst, const void* src, size_t bytes);
// `rows` rows of `row_bytes` each, src rows src_pitch bytes apart, dst rows dst_pitch apart.
void copy_rows(Device device, void* dst, size_t dst_pitch, const void* src, size_t src_pitch,
               size_t row_bytes, int64_t rows);
// Host -> device and device -> host (a plain copy when device is the CPU). download waits for
// everything enqueued before it.
void upload(Device device, void* dst, const void* host_src, size_t bytes);
void download(Device device, void* host_dst, const void* src, size_t bytes);
// Waits for the work enqueued on `device` (nothing to wait for on the CPU).
void synchronize(Device device);
// The most DeviceBuffer bytes in use at once on `device` so far (the GPU pool's peak; 0 on the
// CPU, whose memory the process's peak RSS measures).
size_t peak_bytes_in_use(Device device);

}  // namespace ops

// Owning memory on a device: a 64-byte aligned Buffer on the CPU, a block of the GPU's memory
// pool on CUDA. Move-only.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(Device device, size_t bytes);
  DeviceBuffer(DeviceBuffer&&) noexcept = default;
  DeviceBuffer& operator=(DeviceBuffer&&) noexcept = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  Device device() const { return device_; }
  void* data() const { return data_; }
  size_t size() const { return size_; }
  template <class T>
  T* as() const {
    return static_cast<T*>(data_);
  }

 private:
  Device device_ = Device::CPU;
  std::shared_ptr<void> owner_;  // the Buffer or the pool block; frees the memory
  void* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace zoft
