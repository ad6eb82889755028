// DeviceDecoder: decoder_blocks.cc's forward on device buffers. Read side by side with
// Decoder::embed_forward / layer_forward: the same steps in the same order, cpu:: -> cuda::.
#include "model/cuda/device_decoder.h"

#include <algorithm>
#include <optional>

#include "backend/cuda/check.h"
#include "backend/cuda/context.h"
#include "core/error.h"

namespace zoft {

namespace {

// Copies columns [begin, begin + width) of a device [rows, stride] matrix into the rows of dst,
// dst_stride floats apart (default: packed, [rows, width]).
void copy_columns(const float* src, int64_t rows, int64_t stride, int64_t begin, int64_t width,
                  float* dst, int64_t dst_stride = 0) {
  if (dst_stride == 0) dst_stride = width;
  ZOFT_CUDA_CHECK(cudaMemcpy2DAsync(dst, size_t(dst_stride) * sizeof(float), src + begin,
                                    size_t(stride) * sizeof(float), size_t(width) * sizeof(float),
                                    size_t(rows), cudaMemcpyDeviceToDevice,
                                    cuda::context().stream));
}

void copy_floats(float* dst, const float* src, int64_t count) {
  ZOFT_CUDA_CHECK(cudaMemcpyAsync(dst, src, size_t(count) * sizeof(float), cudaMemcpyDeviceToDevice,
                                  cuda::context().stream));
}

}  // namespace

DeviceKvCache::DeviceKvCache(const ModelConfig& config, int64_t batch, int64_t capacity)
    : host_(config, batch, capacity, true) {
  const size_t bytes = size_t(batch * capacity * config.kv_dim()) * sizeof(float);
  for (int64_t i = 0; i < config.num_layers; ++i) {
    keys_.push_back(std::make_unique<cuda::PoolBuffer>(cuda::context().pool, bytes));
    values_.push_back(std::make_unique<cuda::PoolBuffer>(cuda::context().pool, bytes));
  }
}

template <class T>
T* DeviceDecoder::ensure(Scratch& s, int64_t count) {
  size_t bytes = size_t(std::max<int64_t>(count, 1)) * sizeof(T);
  if (s.bytes < bytes) {
    s.buffer.reset();  // back to the pool first, so that a growing buffer can reuse it
    s.bytes = 0;       // if the allocation below throws, the next call must not use the null
    s.buffer = std::make_unique<cuda::PoolBuffer>(cuda::context().pool, bytes);
    s.bytes = bytes;
  }
  return s.buffer->as<T>();
}

// ---- Weights: uploaded once, in the layout and dtypes ModelWeights holds them ----

const void* DeviceDecoder::upload(const void* host, size_t bytes) {
  auto found = uploaded_.find(host);
  if (found != uploaded_.end()) return found->second;  // a tied table is one device copy
  auto buffer = std::make_unique<cuda::PoolBuffer>(cuda::context().pool, bytes);
  cuda::copy_to_device(buffer->data(), host, bytes);
  const void* device = buffer->data();
  weights_.push_back(std::move(buffer));
  uploaded_[host] = device;
  weight_bytes_ += bytes;
  return device;
}

cuda::DeviceMatrix DeviceDecoder::upload_matrix(const Tensor& t) {
  ZOFT_CHECK(t.ndim == 2 && t.is_contiguous(), "a weight matrix must be 2-D and contiguous, got {}",
             t.shape_string());
  return {upload(t.data, t.nbytes()), t.dtype, t.dim(0), t.dim(1)};
}

const float* DeviceDecoder::upload_floats(const float* host, int64_t count) {
  if (!host) return nullptr;
  return static_cast<const float*>(upload(host, size_t(count) * sizeof(float)));
}

DeviceLinear DeviceDecoder::upload_linear(const LinearWeights& w) {
  DeviceLinear d;
  if (!w.weight.data) return d;  // absent (e.g. q/k/v of a fused-qkv model)
  d.weight = upload_matrix(w.weight);
  d.bias = upload_floats(w.bias, w.out_features);
  d.in_features = w.in_features;
  return d;
}

DeviceNorm DeviceDecoder::upload_norm(const NormWeights& w, int64_t dim) {
  return {upload_floats(w.weight, dim), upload_floats(w.bias, dim)};
}

DeviceDecoder::DeviceDecoder(const Decoder& model) : model_(model) {
  if (!cuda::device_available())
    fail("--device cuda: no CUDA device found (cudaGetDeviceCount reports none)");
  const ModelConfig& c = model.config();
  const ModelWeights& w = model.weights();
  const int64_t H = c.hidden_size, D = c.head_dim;
  embed_tokens_ = upload_matrix(w.embed_tokens);
  if (c.positions == PositionKind::Learned) embed_positions_ = upload_matrix(w.embed_positions);
  for (const LayerWeights& L : w.layers) {
    DeviceLayer d;
    d.attn_norm = upload_norm(L.attn_norm, H);
    d.q_norm = upload_norm(L.q_norm, D);
    d.k_norm = upload_norm(L.k_norm, D);
    d.post_attn_norm = upload_norm(L.post_attn_norm, H);
    d.ffn_norm = upload_norm(L.ffn_norm, H);
    d.post_ffn_norm = upload_norm(L.post_ffn_norm, H);
    d.q = upload_linear(L.q);
    d.k = upload_linear(L.k);
    d.v = upload_linear(L.v);
    d.qkv = upload_linear(L.qkv);
    d.o = upload_linear(L.o);
    d.gate = upload_linear(L.gate);
    d.up = upload_linear(L.up);
    d.down = upload_linear(L.down);
    layers_.push_back(d);
  }
  final_norm_ = upload_norm(w.final_norm, H);
  lm_head_ = upload_linear(w.lm_head);
  if (c.positions == PositionKind::Rope) {
    rope_global_ = make_rope_table(c.rope, D);
    rope_local_ = make_rope_table(c.rope_local, D);
    inv_freq_global_ = upload_floats(rope_global_.inv_freq.data(), rope_global_.rotary_dim / 2);
    inv_freq_local_ = upload_floats(rope_local_.inv_freq.data(), rope_local_.rotary_dim / 2);
  }
  cuda::synchronize();  // the host tables may go once the constructor returns
}

Tensor DeviceDecoder::device_tensor(const Tensor& host) const {
  auto found = uploaded_.find(host.data);
  if (found == uploaded_.end())
    fail("DeviceDecoder: the host tensor {} has no device copy", host.shape_string());
  Tensor device = host;
  device.data = const_cast<void*>(found->second);  // our own buffer, uploaded writable
  return device;
}

// ---- Forward ----

void DeviceDecoder::norm(const DeviceNorm& w, const float* x, float* out, int64_t rows,
                         int64_t dim) const {
  const ModelConfig& c = config();
  if (c.norm == NormKind::LayerNorm)
    cuda::layer_norm(x, w.weight, w.bias, out, rows, dim, c.norm_eps);
  else
    cuda::rms_norm(x, w.weight, out, rows, dim, c.norm_eps, c.norm_unit_offset);
}

void DeviceDecoder::linear(const DeviceLinear& w, const float* x, int64_t rows, float* y) const {
  cuda::linear(x, rows, w.in_features, w.weight, model_.weights().weights_are_kn, w.bias, y);
}

void DeviceDecoder::head(const float* hidden, int64_t rows, float* logits) const {
  const ModelConfig& c = config();
  cuda::linear(hidden, rows, c.hidden_size, lm_head_.weight, false, nullptr, logits);
  if (c.final_softcap > 0) cuda::softcap(logits, rows * c.vocab_size, c.final_softcap);
}

int64_t DeviceDecoder::head_chunk_rows(int64_t rows) const {
  int64_t chunk = std::max<int64_t>(1, (int64_t(64) << 20) / config().vocab_size);
  return std::min(chunk, std::max<int64_t>(rows, 1));
}

void DeviceDecoder::embed(const ForwardState& state, float* h) {
  const ModelConfig& c = config();
  const int64_t M = state.batch->rows(), H = c.hidden_size;
  int32_t* ids = ensure<int32_t>(ids_, M);
  cuda::copy_to_device(ids, state.embed_ids.data(), size_t(M) * sizeof(int32_t));
  cuda::embedding(embed_tokens_, ids, M, c.embedding_scale, h);
  if (c.positions == PositionKind::Learned) {
    std::vector<int32_t> rows(static_cast<size_t>(M));
    for (int64_t i = 0; i < M; ++i)
      rows[size_t(i)] = state.positions[size_t(i)] + int32_t(c.position_offset);
    cuda::copy_to_device(ids, rows.data(), size_t(M) * sizeof(int32_t));  // ids are consumed
    float* tmp = ensure<float>(tmp_, M * H);
    cuda::embedding(embed_positions_, ids, M, 1.0f, tmp);
    cuda::add_inplace(h, tmp, M * H);
  }
}

void DeviceDecoder::layer(int64_t index, const ForwardState& state, const int32_t* positions,
                          const uint8_t* key_valid, DeviceKvCache* cache, float* h) {
  const ModelConfig& c = config();
  const DeviceLayer& w = layers_[size_t(index)];
  const TokenBatch& batch = *state.batch;
  const int64_t M = batch.rows(), H = c.hidden_size, D = c.head_dim, T = batch.seq;
  const int64_t qd = c.q_dim(), kd = c.kv_dim(), I = c.intermediate_size;
  float* x = ensure<float>(normed_, M * H);
  float* q = ensure<float>(q_, M * qd);
  float* k = ensure<float>(k_, M * kd);
  float* v = ensure<float>(v_, M * kd);
  float* tmp = ensure<float>(tmp_, M * std::max(H, qd));
  float* attn = ensure<float>(attn_, M * qd);

  // Attention block.
  norm(w.attn_norm, h, x, M, H);
  if (w.qkv.weight.data) {
    float* qkv = ensure<float>(qkv_, M * (qd + 2 * kd));
    linear(w.qkv, x, M, qkv);
    copy_columns(qkv, M, qd + 2 * kd, 0, qd, q);
    copy_columns(qkv, M, qd + 2 * kd, qd, kd, k);
    copy_columns(qkv, M, qd + 2 * kd, qd + kd, kd, v);
  } else {
    linear(w.q, x, M, q);
    linear(w.k, x, M, k);
    linear(w.v, x, M, v);
  }
  if (c.qk_norm) {  // per-head RMSNorm, out of place as on the CPU
    norm(w.q_norm, q, tmp, M * c.num_heads, D);
    copy_floats(q, tmp, M * qd);
    norm(w.k_norm, k, tmp, M * c.num_kv_heads, D);
    copy_floats(k, tmp, M * kd);
  }
  if (c.positions == PositionKind::Rope) {
    bool sliding = c.is_sliding(index);
    const RopeTable& rope = sliding ? rope_local_ : rope_global_;
    const float* inv_freq = sliding ? inv_freq_local_ : inv_freq_global_;
    cuda::rope(q, positions, M, c.num_heads, D, rope.rotary_dim, inv_freq, rope.attention_scaling);
    cuda::rope(k, positions, M, c.num_kv_heads, D, rope.rotary_dim, inv_freq,
               rope.attention_scaling);
  }
  // Without a cache, k and v of this batch are the whole key set, [B, T, Hkv, D]. With one,
  // they go after the cached keys of each sequence (the host cache's length is the offset
  // until end_forward commits the batch), and attention reads the cache.
  const float* keys = k;
  const float* values = v;
  AttentionShape shape;
  shape.batch = batch.batch;
  shape.q_len = T;
  shape.kv_len = T;
  shape.kv_capacity = T;
  if (cache) {
    const int64_t offset = cache->host().length(), capacity = cache->capacity();
    copy_columns(k, batch.batch, T * kd, 0, T * kd, cache->keys(index) + offset * kd,
                 capacity * kd);
    copy_columns(v, batch.batch, T * kd, 0, T * kd, cache->values(index) + offset * kd,
                 capacity * kd);
    keys = cache->keys(index);
    values = cache->values(index);
    shape.kv_len = offset + T;
    shape.kv_capacity = capacity;
  }
  shape.q_heads = c.num_heads;
  shape.kv_heads = c.num_kv_heads;
  shape.head_dim = D;
  cuda::attention(q, keys, values, key_valid, attn, shape, c.attention_scale,
                  c.layer_window[size_t(index)], c.attn_softcap);
  linear(w.o, attn, M, tmp);
  if (w.post_attn_norm.weight) {
    norm(w.post_attn_norm, tmp, x, M, H);
    cuda::add_inplace(h, x, M * H);
  } else {
    cuda::add_inplace(h, tmp, M * H);
  }

  // MLP block.
  norm(w.ffn_norm, h, x, M, H);
  float* up = ensure<float>(up_, M * I);
  float* act = up;
  if (c.gated_mlp) {
    float* gate = ensure<float>(gate_, M * I);
    linear(w.gate, x, M, gate);
    linear(w.up, x, M, up);
    cuda::gated_activation(c.activation, gate, up, I, gate, M, I);
    act = gate;
  } else {
    linear(w.up, x, M, up);
    cuda::activation(c.activation, up, M * I);
  }
  linear(w.down, act, M, tmp);
  if (w.post_ffn_norm.weight) {
    norm(w.post_ffn_norm, tmp, x, M, H);
    cuda::add_inplace(h, x, M * H);
  } else {
    cuda::add_inplace(h, tmp, M * H);
  }
}

const float* DeviceDecoder::forward_hidden(const TokenBatch& batch, DeviceKvCache* cache) {
  const ModelConfig& c = config();
  const int64_t M = batch.rows(), H = c.hidden_size;
  // The host bookkeeping of the CPU decoder (positions counting real tokens, key masks, id
  // checks) is reused as is; its one-layer host cache is only allocated, never written.
  std::optional<KvCache> local;
  KvCache& host_cache = cache ? cache->host() : local.emplace(c, batch.batch, batch.seq, true);
  ForwardState state;
  model_.begin_forward(batch, host_cache, state);
  int32_t* positions = ensure<int32_t>(positions_, M);
  cuda::copy_to_device(positions, state.positions.data(), size_t(M) * sizeof(int32_t));
  const int64_t key_count = int64_t(state.key_valid.size());  // [batch, kv_len]
  uint8_t* key_valid = ensure<uint8_t>(key_valid_, key_count);
  cuda::copy_to_device(key_valid, state.key_valid.data(), size_t(key_count));

  float* h = ensure<float>(hidden_, M * H);
  embed(state, h);
  for (int64_t i = 0; i < c.num_layers; ++i) layer(i, state, positions, key_valid, cache, h);
  float* x = ensure<float>(normed_, M * H);
  norm(final_norm_, h, x, M, H);
  if (cache) model_.end_forward(state);  // the batch is in the cache: advance its length
  return x;
}

void DeviceDecoder::logits(const TokenBatch& batch, float* out) {
  const int64_t M = batch.rows(), H = config().hidden_size, V = config().vocab_size;
  const float* hidden = forward_hidden(batch);
  const int64_t chunk = head_chunk_rows(M);
  float* logits = ensure<float>(logits_, chunk * V);
  for (int64_t begin = 0; begin < M; begin += chunk) {
    int64_t n = std::min(chunk, M - begin);
    head(hidden + begin * H, n, logits);
    cuda::copy_to_host(out + begin * V, logits, size_t(n * V) * sizeof(float));
  }
}

void DeviceDecoder::token_losses(const TokenBatch& batch, const int32_t* targets, float* loss) {
  const int64_t M = batch.rows(), H = config().hidden_size, V = config().vocab_size;
  for (int64_t i = 0; i < M; ++i)  // the CPU decoder's message, before any work
    if (targets[i] >= V) fail("target id {} is outside the vocabulary of {} tokens", targets[i], V);
  const float* hidden = forward_hidden(batch);
  int32_t* device_targets = ensure<int32_t>(targets_, M);
  cuda::copy_to_device(device_targets, targets, size_t(M) * sizeof(int32_t));
  float* device_loss = ensure<float>(loss_, M);
  // Every row goes through the head (a row without a target costs a wasted GEMM row and gets
  // loss 0 from cross_entropy); chunks bound the logits to ~256 MiB.
  const int64_t chunk = head_chunk_rows(M);
  float* logits = ensure<float>(logits_, chunk * V);
  for (int64_t begin = 0; begin < M; begin += chunk) {
    int64_t n = std::min(chunk, M - begin);
    head(hidden + begin * H, n, logits);
    cuda::cross_entropy(logits, device_targets + begin, n, V, device_loss + begin);
  }
  cuda::copy_to_host(loss, device_loss, size_t(M) * sizeof(float));
}

void DeviceDecoder::forward_cached(const TokenBatch& batch, DeviceKvCache& cache,
                                   const std::vector<int64_t>& rows, float* out) {
  const int64_t H = config().hidden_size, V = config().vocab_size, n = int64_t(rows.size());
  for (int64_t row : rows)  // the CPU decoder's check and message, before any work
    ZOFT_CHECK(row >= 0 && row < batch.rows(), "row {} outside the batch", row);
  const float* hidden = forward_hidden(batch, &cache);
  float* picked = ensure<float>(picked_, n * H);
  for (int64_t i = 0; i < n; ++i) copy_floats(picked + i * H, hidden + rows[size_t(i)] * H, H);
  const int64_t chunk = head_chunk_rows(n);
  float* logits = ensure<float>(logits_, chunk * V);
  for (int64_t begin = 0; begin < n; begin += chunk) {
    int64_t count = std::min(chunk, n - begin);
    head(picked + begin * H, count, logits);
    cuda::copy_to_host(out + begin * V, logits, size_t(count * V) * sizeof(float));
  }
}

}  // namespace zoft
