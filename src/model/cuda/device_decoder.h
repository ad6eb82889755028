// The decoder's forward pass on a CUDA GPU (built with ZOFT_CUDA only): the weights of a loaded
// Decoder are uploaded once, in the dtypes they were loaded in (matrices in the compute dtype,
// norms / biases / position tables in f32), and the forward runs on the cuda:: ops of
// backend/ops.h on device buffers. The same ModelConfig flags steer it as decoder_blocks.cc,
// so every architecture table the CPU decoder serves runs here without code of its own.
//
// Scope: whole-batch forwards (logits, per-token losses), what eval and ZO training need
// (train/cuda/device_zo_step.h perturbs the weights in place through device_tensor()), and the
// cached forward of generation (DeviceKvCache). No offload (docs/cuda.md).
#pragma once

#include <memory>
#include <unordered_map>
#include <vector>

#include "backend/cuda/memory_pool.h"
#include "backend/ops.h"
#include "model/decoder.h"
#include "model/rope.h"

namespace zoft {

struct DeviceLinear {
  cuda::DeviceMatrix weight;    // [out, in] ([in, out] when the model's weights_are_kn)
  const float* bias = nullptr;  // [out] or null
  int64_t in_features = 0;
};

struct DeviceNorm {
  const float* weight = nullptr;  // null: this norm is absent
  const float* bias = nullptr;    // LayerNorm only
};

struct DeviceLayer {
  DeviceNorm attn_norm, q_norm, k_norm, post_attn_norm, ffn_norm, post_ffn_norm;
  DeviceLinear q, k, v, qkv, o, gate, up, down;
};

// Keys and values of past tokens in device memory, [batch, capacity, kv_heads, head_dim] per
// layer, plus a host KvCache (one layer, never written) for the bookkeeping that
// Decoder::begin_forward / end_forward keep: positions, valid keys, length.
class DeviceKvCache {
 public:
  DeviceKvCache(const ModelConfig& config, int64_t batch, int64_t capacity);

  KvCache& host() { return host_; }
  int64_t capacity() const { return host_.capacity(); }
  float* keys(int64_t layer) { return keys_[size_t(layer)]->as<float>(); }
  float* values(int64_t layer) { return values_[size_t(layer)]->as<float>(); }

 private:
  KvCache host_;
  std::vector<std::unique_ptr<cuda::PoolBuffer>> keys_, values_;
};

class DeviceDecoder {
 public:
  // Uploads every weight of `model`; throws Error when there is no GPU or it is out of memory.
  // `model` must outlive this object: its config and its host-side batch bookkeeping
  // (Decoder::begin_forward: positions, padding masks, id checks) are reused, not copied.
  explicit DeviceDecoder(const Decoder& model);
  DeviceDecoder(const DeviceDecoder&) = delete;
  DeviceDecoder& operator=(const DeviceDecoder&) = delete;

  const Decoder& host() const { return model_; }
  const ModelConfig& config() const { return model_.config(); }
  size_t weight_bytes() const { return weight_bytes_; }

  // The device copy of the host weight `host` (found by its host storage): same dtype and
  // shape, writable, so that ZO training can perturb and update it in place. A tied table is
  // one device copy, as on the host. Throws when `host` was never uploaded.
  Tensor device_tensor(const Tensor& host) const;

  // As Decoder::logits: host out [batch, seq, vocab] for every position.
  void logits(const TokenBatch& batch, float* out);
  // As Decoder::token_losses: host loss[b*seq + t], 0 where targets < 0.
  void token_losses(const TokenBatch& batch, const int32_t* targets, float* loss);
  // As Decoder::forward_cached: appends the batch to `cache` and writes the logits of the rows
  // selected by `rows` (indices into [batch * seq]) into host out [rows.size(), vocab].
  void forward_cached(const TokenBatch& batch, DeviceKvCache& cache,
                      const std::vector<int64_t>& rows, float* out);

 private:
  // A grow-only device buffer (the pool reuses the memory of a buffer that grows).
  struct Scratch {
    std::unique_ptr<cuda::PoolBuffer> buffer;
    size_t bytes = 0;
  };
  template <class T>
  T* ensure(Scratch& s, int64_t count);

  const void* upload(const void* host, size_t bytes);
  cuda::DeviceMatrix upload_matrix(const Tensor& t);
  const float* upload_floats(const float* host, int64_t count);
  DeviceLinear upload_linear(const LinearWeights& w);
  DeviceNorm upload_norm(const NormWeights& w, int64_t dim);

  // The final hidden states [rows, hidden] of the batch, in device memory (scratch). With a
  // cache the batch's keys and values are appended to it and attention sees the cached ones.
  const float* forward_hidden(const TokenBatch& batch, DeviceKvCache* cache = nullptr);
  void embed(const ForwardState& state, float* h);
  void layer(int64_t index, const ForwardState& state, const int32_t* positions,
             const uint8_t* key_valid, DeviceKvCache* cache, float* h);
  void norm(const DeviceNorm& w, const float* x, float* out, int64_t rows, int64_t dim) const;
  void linear(const DeviceLinear& w, const float* x, int64_t rows, float* y) const;
  // LM head (+ final soft-cap) for `rows` hidden rows into device logits [rows, vocab].
  void head(const float* hidden, int64_t rows, float* logits) const;
  // Rows of LM-head output per chunk: ~256 MiB of f32 logits at a time.
  int64_t head_chunk_rows(int64_t rows) const;

  const Decoder& model_;
  std::vector<std::unique_ptr<cuda::PoolBuffer>> weights_;
  std::unordered_map<const void*, const void*> uploaded_;  // host -> device (tied tables once)
  size_t weight_bytes_ = 0;
  cuda::DeviceMatrix embed_tokens_, embed_positions_;
  DeviceNorm final_norm_;
  DeviceLinear lm_head_;
  std::vector<DeviceLayer> layers_;
  RopeTable rope_global_, rope_local_;  // host tables, for rotary_dim / attention_scaling
  const float* inv_freq_global_ = nullptr;
  const float* inv_freq_local_ = nullptr;
  Scratch hidden_, normed_, q_, k_, v_, qkv_, attn_, tmp_, gate_, up_, logits_, loss_;
  Scratch ids_, positions_, key_valid_, targets_, picked_;
};

}  // namespace zoft
