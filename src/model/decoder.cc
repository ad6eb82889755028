#include "model/decoder.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace zoft {

namespace {

float* ensure(Buffer& buffer, int64_t floats) {
  size_t bytes = size_t(std::max<int64_t>(floats, 1)) * sizeof(float);
  if (buffer.size() < bytes) buffer = Buffer(bytes);
  return buffer.as<float>();
}

// Copies columns [begin, begin + width) of a [rows, stride] matrix into a [rows, width] one.
void copy_columns(const float* src, int64_t rows, int64_t stride, int64_t begin, int64_t width,
                  float* dst) {
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(dst + r * width, src + r * stride + begin, size_t(width) * sizeof(float));
}

}  // namespace

TokenBatch TokenBatch::from_sequences(const std::vector<std::vector<int32_t>>& sequences,
                                      int32_t pad_id, bool left_pad) {
  TokenBatch b;
  b.batch = int64_t(sequences.size());
  for (const auto& s : sequences) b.seq = std::max<int64_t>(b.seq, int64_t(s.size()));
  b.ids.assign(size_t(b.rows()), std::max(pad_id, 0));
  b.mask.assign(size_t(b.rows()), 0);
  for (int64_t i = 0; i < b.batch; ++i) {
    const auto& s = sequences[size_t(i)];
    int64_t start = left_pad ? b.seq - int64_t(s.size()) : 0;
    for (size_t t = 0; t < s.size(); ++t) {
      b.ids[size_t(i * b.seq + start + int64_t(t))] = s[t];
      b.mask[size_t(i * b.seq + start + int64_t(t))] = 1;
    }
  }
  return b;
}

KvCache::KvCache(const ModelConfig& c, int64_t batch, int64_t capacity, bool one_layer_only)
    : batch_(batch), capacity_(capacity), kv_dim_(c.kv_dim()), one_layer_only_(one_layer_only) {
  int64_t layers = one_layer_only ? 1 : c.num_layers;
  size_t bytes = size_t(layers * batch * capacity * kv_dim_) * sizeof(float);
  k_ = Buffer(bytes);
  v_ = Buffer(bytes);
  valid_.assign(size_t(batch * capacity), 0);
  next_position_.assign(size_t(batch), 0);
}

float* KvCache::keys(int64_t layer) {
  return k_.as<float>() + (one_layer_only_ ? 0 : layer) * batch_ * capacity_ * kv_dim_;
}

float* KvCache::values(int64_t layer) {
  return v_.as<float>() + (one_layer_only_ ? 0 : layer) * batch_ * capacity_ * kv_dim_;
}

Decoder Decoder::load(const std::string& model_dir, DType compute) {
  Decoder d;
  LoadedConfig loaded = read_model_config(model_dir);
  d.arch_ = loaded.arch;
  d.config_ = loaded.config;
  d.weights_ = load_weights(model_dir, *d.arch_, d.config_, compute);
  if (d.config_.positions == PositionKind::Rope) {
    d.rope_global_ = make_rope_table(d.config_.rope, d.config_.head_dim);
    d.rope_local_ = make_rope_table(d.config_.rope_local, d.config_.head_dim);
  }
  return d;
}

void Decoder::norm(const NormWeights& w, const float* x, float* out, int64_t rows,
                   int64_t dim) const {
  if (config_.norm == NormKind::LayerNorm)
    cpu::layer_norm(x, w.weight, w.bias, out, rows, dim, config_.norm_eps);
  else
    cpu::rms_norm(x, w.weight, out, rows, dim, config_.norm_eps, config_.norm_unit_offset);
}

void Decoder::linear(const LinearWeights& w, const float* x, int64_t rows, float* y) const {
  cpu::linear(x, rows, w.in_features, w.weight, weights_.weights_are_kn, w.bias, y);
}

void Decoder::head_logits(const float* hidden, int64_t rows, float* logits) const {
  cpu::linear(hidden, rows, config_.hidden_size, weights_.lm_head.weight, false, nullptr, logits);
  if (config_.final_softcap > 0)
    cpu::softcap(logits, rows * config_.vocab_size, config_.final_softcap);
}

void Decoder::layer_forward(int64_t layer, const TokenBatch& batch, KvCache& cache, float* h,
                            const int32_t* positions, const uint8_t* key_valid) {
  const ModelConfig& c = config_;
  const LayerWeights& w = weights_.layers[size_t(layer)];
  const int64_t M = batch.rows(), H = c.hidden_size, D = c.head_dim;
  const int64_t qd = c.q_dim(), kd = c.kv_dim(), I = c.intermediate_size;
  Scratch& s = scratch_;
  float* x = s.normed.as<float>();
  float* q = s.q.as<float>();
  float* k = s.k.as<float>();
  float* v = s.v.as<float>();
  float* tmp = s.tmp.as<float>();

  // Attention block.
  norm(w.attn_norm, h, x, M, H);
  if (w.qkv.weight.data) {
    float* qkv = s.qkv.as<float>();
    linear(w.qkv, x, M, qkv);
    copy_columns(qkv, M, qd + 2 * kd, 0, qd, q);
    copy_columns(qkv, M, qd + 2 * kd, qd, kd, k);
    copy_columns(qkv, M, qd + 2 * kd, qd + kd, kd, v);
  } else {
    linear(w.q, x, M, q);
    linear(w.k, x, M, k);
    linear(w.v, x, M, v);
  }
  if (c.qk_norm) {  // per-head RMSNorm; the norm reads and writes whole rows, so use tmp
    norm(w.q_norm, q, tmp, M * c.num_heads, D);
    std::memcpy(q, tmp, size_t(M * qd) * sizeof(float));
    norm(w.k_norm, k, tmp, M * c.num_kv_heads, D);
    std::memcpy(k, tmp, size_t(M * kd) * sizeof(float));
  }
  if (c.positions == PositionKind::Rope) {
    const RopeTable& rope = c.is_sliding(layer) ? rope_local_ : rope_global_;
    cpu::rope(q, positions, M, c.num_heads, D, rope.rotary_dim, rope.inv_freq.data(),
              rope.attention_scaling);
    cpu::rope(k, positions, M, c.num_kv_heads, D, rope.rotary_dim, rope.inv_freq.data(),
              rope.attention_scaling);
  }
  // Append this step's keys and values after the cached ones.
  float* cache_k = cache.keys(layer);
  float* cache_v = cache.values(layer);
  const int64_t T = batch.seq, offset = cache.length_;
  for (int64_t b = 0; b < batch.batch; ++b) {
    size_t dst = size_t((b * cache.capacity_ + offset) * kd);
    std::memcpy(cache_k + dst, k + b * T * kd, size_t(T * kd) * sizeof(float));
    std::memcpy(cache_v + dst, v + b * T * kd, size_t(T * kd) * sizeof(float));
  }
  cpu::AttentionShape shape;
  shape.batch = batch.batch;
  shape.q_len = T;
  shape.kv_len = offset + T;
  shape.kv_capacity = cache.capacity_;
  shape.q_heads = c.num_heads;
  shape.kv_heads = c.num_kv_heads;
  shape.head_dim = D;
  float* attn = s.attn.as<float>();
  cpu::attention(q, cache_k, cache_v, key_valid, attn, shape, c.attention_scale,
                 c.layer_window[size_t(layer)], c.attn_softcap);
  linear(w.o, attn, M, tmp);
  if (w.post_attn_norm.weight) {
    norm(w.post_attn_norm, tmp, x, M, H);
    cpu::add_inplace(h, x, M * H);
  } else {
    cpu::add_inplace(h, tmp, M * H);
  }

  // MLP block.
  norm(w.ffn_norm, h, x, M, H);
  float* up = s.up.as<float>();
  float* act = up;
  if (c.gated_mlp) {
    float* gate = s.gate.as<float>();
    linear(w.gate, x, M, gate);
    linear(w.up, x, M, up);
    cpu::gated_activation(c.activation, gate, up, I, gate, M, I);
    act = gate;
  } else {
    linear(w.up, x, M, up);
    cpu::activation(c.activation, up, M * I);
  }
  linear(w.down, act, M, tmp);
  if (w.post_ffn_norm.weight) {
    norm(w.post_ffn_norm, tmp, x, M, H);
    cpu::add_inplace(h, x, M * H);
  } else {
    cpu::add_inplace(h, tmp, M * H);
  }
}

void Decoder::forward_hidden(const TokenBatch& batch, KvCache& cache, float* hidden) {
  const ModelConfig& c = config_;
  const int64_t B = batch.batch, T = batch.seq, M = batch.rows(), H = c.hidden_size;
  ZOFT_CHECK(B == cache.batch_, "batch of {} sequences given to a cache made for {}", B,
             cache.batch_);
  ZOFT_CHECK(cache.length_ + T <= cache.capacity_,
             "sequence of {} tokens exceeds the cache capacity {}", cache.length_ + T,
             cache.capacity_);
  ZOFT_CHECK(int64_t(batch.ids.size()) == M && int64_t(batch.mask.size()) == M,
             "token batch holds {} ids and {} mask entries for {} x {}", batch.ids.size(),
             batch.mask.size(), B, T);
  Scratch& s = scratch_;
  ensure(s.normed, M * H);
  ensure(s.q, M * c.q_dim());
  ensure(s.k, M * c.kv_dim());
  ensure(s.v, M * c.kv_dim());
  ensure(s.attn, M * c.q_dim());
  ensure(s.tmp, M * std::max(H, c.q_dim()));
  ensure(s.gate, M * c.intermediate_size);
  ensure(s.up, M * c.intermediate_size);
  if (!weights_.layers.empty() && weights_.layers[0].qkv.weight.data)
    ensure(s.qkv, M * (c.q_dim() + 2 * c.kv_dim()));

  // Positions count real tokens only, so a left-padded sequence is computed as if unpadded.
  auto* positions = reinterpret_cast<int32_t*>(ensure(s.positions, M));
  for (int64_t b = 0; b < B; ++b) {
    int32_t seen = cache.next_position_[size_t(b)];
    for (int64_t t = 0; t < T; ++t) {
      bool real = batch.mask[size_t(b * T + t)] != 0;
      positions[b * T + t] = real ? seen : std::max(seen - 1, 0);
      seen += real;
      cache.valid_[size_t(b * cache.capacity_ + cache.length_ + t)] = real;
    }
  }
  const int64_t kv_len = cache.length_ + T;
  auto* key_valid = reinterpret_cast<uint8_t*>(ensure(s.key_valid, B * kv_len));
  for (int64_t b = 0; b < B; ++b)
    std::memcpy(key_valid + b * kv_len, cache.valid_.data() + b * cache.capacity_, size_t(kv_len));

  for (int64_t i = 0; i < M; ++i) {
    int32_t id = batch.ids[size_t(i)];
    if (batch.mask[size_t(i)] && (id < 0 || id >= c.vocab_size))
      fail("token id {} is outside the vocabulary of {} tokens", id, c.vocab_size);
  }
  // Padding ids may be anything (e.g. -100 from a collator); embed them as token 0.
  std::vector<int32_t> ids(batch.ids);
  for (int64_t i = 0; i < M; ++i)
    if (!batch.mask[size_t(i)]) ids[size_t(i)] = 0;
  cpu::embedding(weights_.embed_tokens, ids.data(), M, c.embedding_scale, hidden);
  if (c.positions == PositionKind::Learned) {
    std::vector<int32_t> rows(static_cast<size_t>(M));
    for (int64_t i = 0; i < M; ++i) {
      rows[size_t(i)] = positions[i] + int32_t(c.position_offset);
      if (rows[size_t(i)] >= weights_.embed_positions.dim(0))
        fail("position {} is beyond max_position_embeddings {}", positions[i], c.max_positions);
    }
    cpu::embedding(weights_.embed_positions, rows.data(), M, 1.0f, s.tmp.as<float>());
    cpu::add_inplace(hidden, s.tmp.as<float>(), M * H);
  }
  for (int64_t layer = 0; layer < c.num_layers; ++layer)
    layer_forward(layer, batch, cache, hidden, positions, key_valid);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) cache.next_position_[size_t(b)] += batch.mask[size_t(b * T + t)];
  cache.length_ += T;
  norm(weights_.final_norm, hidden, s.normed.as<float>(), M, H);
  std::memcpy(hidden, s.normed.as<float>(), size_t(M * H) * sizeof(float));
}

void Decoder::logits(const TokenBatch& batch, float* out) {
  KvCache cache(config_, batch.batch, batch.seq, true);
  float* hidden = ensure(scratch_.hidden, batch.rows() * config_.hidden_size);
  forward_hidden(batch, cache, hidden);
  head_logits(hidden, batch.rows(), out);
}

void Decoder::forward_cached(const TokenBatch& batch, KvCache& cache,
                             const std::vector<int64_t>& rows, float* out) {
  const int64_t H = config_.hidden_size;
  float* hidden = ensure(scratch_.hidden, batch.rows() * H);
  forward_hidden(batch, cache, hidden);
  std::vector<float> picked(rows.size() * size_t(H));
  for (size_t i = 0; i < rows.size(); ++i) {
    ZOFT_CHECK(rows[i] >= 0 && rows[i] < batch.rows(), "row {} outside the batch", rows[i]);
    std::memcpy(picked.data() + i * size_t(H), hidden + rows[i] * H, size_t(H) * sizeof(float));
  }
  head_logits(picked.data(), int64_t(rows.size()), out);
}

std::vector<int32_t> Decoder::next_token_targets(const TokenBatch& batch) {
  std::vector<int32_t> targets(size_t(batch.rows()), -1);
  for (int64_t b = 0; b < batch.batch; ++b)
    for (int64_t t = 0; t + 1 < batch.seq; ++t) {
      size_t i = size_t(b * batch.seq + t);
      if (batch.mask[i] && batch.mask[i + 1]) targets[i] = batch.ids[i + 1];
    }
  return targets;
}

void Decoder::token_losses(const TokenBatch& batch, const int32_t* targets, float* loss) {
  const int64_t M = batch.rows(), H = config_.hidden_size, V = config_.vocab_size;
  KvCache cache(config_, batch.batch, batch.seq, true);
  float* hidden = ensure(scratch_.hidden, M * H);
  forward_hidden(batch, cache, hidden);

  // Only rows with a target need logits; gather them and go a chunk at a time (~32 MiB).
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < M; ++i) {
    loss[i] = 0.0f;
    if (targets[i] < 0) continue;
    if (targets[i] >= V) fail("target id {} is outside the vocabulary of {} tokens", targets[i], V);
    rows.push_back(i);
  }
  const int64_t chunk = std::max<int64_t>(1, (int64_t(8) << 20) / V);
  float* logits = ensure(scratch_.logits, std::min<int64_t>(chunk, int64_t(rows.size())) * V);
  std::vector<float> picked(static_cast<size_t>(chunk * H));
  std::vector<int32_t> chunk_targets(static_cast<size_t>(chunk));
  std::vector<float> chunk_loss(static_cast<size_t>(chunk));
  for (size_t begin = 0; begin < rows.size(); begin += size_t(chunk)) {
    int64_t n = std::min<int64_t>(chunk, int64_t(rows.size() - begin));
    for (int64_t j = 0; j < n; ++j) {
      int64_t r = rows[begin + size_t(j)];
      std::memcpy(picked.data() + j * H, hidden + r * H, size_t(H) * sizeof(float));
      chunk_targets[size_t(j)] = targets[r];
    }
    head_logits(picked.data(), n, logits);
    cpu::cross_entropy(logits, chunk_targets.data(), n, V, chunk_loss.data());
    for (int64_t j = 0; j < n; ++j) loss[rows[begin + size_t(j)]] = chunk_loss[size_t(j)];
  }
}

}  // namespace zoft
