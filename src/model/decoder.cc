#include "model/decoder.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "model/lora.h"
#include "model/model_source.h"
#include "model/scratch.h"

namespace zoft {

TokenBatch TokenBatch::slice(int64_t begin, int64_t end) const {
  ZOFT_CHECK(0 <= begin && begin <= end && end <= batch, "sequences [{}, {}) of a batch of {}",
             begin, end, batch);
  TokenBatch t;
  t.batch = end - begin;
  t.seq = seq;
  t.ids.assign(ids.begin() + begin * seq, ids.begin() + end * seq);
  t.mask.assign(mask.begin() + begin * seq, mask.begin() + end * seq);
  return t;
}

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

Decoder Decoder::load(const std::string& path, DType compute) {
  Decoder d;
  ModelSource source = open_model_source(path);
  d.arch_ = source.loaded.arch;
  d.config_ = source.loaded.config;
  d.weights_ = load_weights(std::move(source.tensors), *d.arch_, d.config_, compute);
  d.make_rope_tables();
  return d;
}

void Decoder::make_rope_tables() {
  if (config_.positions != PositionKind::Rope) return;
  rope_global_ = make_rope_table(config_.rope, config_.head_dim);
  rope_local_ = make_rope_table(config_.rope_local, config_.head_dim);
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
  if (w.lora) lora_forward(*w.lora, x, rows, y);  // --- LoRA hook (model/lora.h) ---
}

void Decoder::head_logits(const float* hidden, int64_t rows, float* logits) const {
  cpu::linear(hidden, rows, config_.hidden_size, weights_.lm_head.weight, false, nullptr, logits);
  if (config_.final_softcap > 0)
    cpu::softcap(logits, rows * config_.vocab_size, config_.final_softcap);
}

void Decoder::candidate_logits(const float* hidden, const std::vector<int64_t>& rows,
                               const std::vector<int32_t>& ids, float* out) const {
  const int64_t H = config_.hidden_size, V = config_.vocab_size;
  const Tensor& head = weights_.lm_head.weight;
  const size_t row_bytes = size_t(H) * dtype_size(head.dtype);
  Buffer picked_w(ids.size() * row_bytes);
  for (size_t j = 0; j < ids.size(); ++j) {
    ZOFT_CHECK(ids[j] >= 0 && ids[j] < V, "candidate token {} is outside the vocabulary of {}",
               ids[j], V);
    std::memcpy(static_cast<uint8_t*>(picked_w.data()) + j * row_bytes,
                static_cast<const uint8_t*>(head.data) + size_t(ids[j]) * row_bytes, row_bytes);
  }
  std::vector<float> picked_h(rows.size() * size_t(H));
  for (size_t i = 0; i < rows.size(); ++i)
    std::memcpy(picked_h.data() + i * size_t(H), hidden + rows[i] * H, size_t(H) * sizeof(float));
  Tensor w(picked_w.data(), head.dtype, {int64_t(ids.size()), H});
  cpu::linear(picked_h.data(), int64_t(rows.size()), H, w, false, nullptr, out);
  if (config_.final_softcap > 0)
    cpu::softcap(out, int64_t(rows.size() * ids.size()), config_.final_softcap);
}

void Decoder::logits(const TokenBatch& batch, float* out) {
  KvCache cache(config_, batch.batch, batch.seq, true);
  ForwardState state;
  forward_hidden(batch, cache, state);
  head_logits(state.h(), batch.rows(), out);
}

void Decoder::forward_cached(const TokenBatch& batch, KvCache& cache,
                             const std::vector<int64_t>& rows, float* out) {
  const int64_t H = config_.hidden_size;
  ForwardState state;
  forward_hidden(batch, cache, state);
  std::vector<float> picked(rows.size() * size_t(H));
  for (size_t i = 0; i < rows.size(); ++i) {
    ZOFT_CHECK(rows[i] >= 0 && rows[i] < batch.rows(), "row {} outside the batch", rows[i]);
    std::memcpy(picked.data() + i * size_t(H), state.h() + rows[i] * H, size_t(H) * sizeof(float));
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
  KvCache cache(config_, batch.batch, batch.seq, true);
  ForwardState state;
  forward_hidden(batch, cache, state);
  losses_from_hidden(state.h(), batch.rows(), targets, loss);
}

void Decoder::losses_from_hidden(const float* hidden, int64_t M, const int32_t* targets,
                                 float* loss) {
  const int64_t H = config_.hidden_size, V = config_.vocab_size;
  // Only rows with a target need logits; gather them and go a chunk at a time (~32 MiB).
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < M; ++i) {
    loss[i] = 0.0f;
    if (targets[i] < 0) continue;
    if (targets[i] >= V) fail("target id {} is outside the vocabulary of {} tokens", targets[i], V);
    rows.push_back(i);
  }
  const int64_t chunk = std::max<int64_t>(1, (int64_t(8) << 20) / V);
  float* logits =
      ensure_floats(scratch_.logits, std::min<int64_t>(chunk, int64_t(rows.size())) * V);
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
