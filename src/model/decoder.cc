#include "model/decoder.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>

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

KvCache::KvCache(const ModelConfig& c, int64_t batch, int64_t capacity, bool one_layer_only,
                 Device device)
    : batch_(batch), capacity_(capacity), kv_dim_(c.kv_dim()), one_layer_only_(one_layer_only) {
  int64_t layers = one_layer_only ? 1 : c.num_layers;
  size_t bytes = size_t(layers * batch * capacity * kv_dim_) * sizeof(float);
  k_ = DeviceBuffer(device, bytes);
  v_ = DeviceBuffer(device, bytes);
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

namespace {

// Moves a model's weights to another device's memory, each host storage once (a tied table and
// its LM head are one copy there, as here).
class Uploader {
 public:
  Uploader(Device device, ModelWeights& into) : device_(device), into_(into) {}

  void* move(const void* host, size_t bytes) {
    auto found = moved_.find(host);
    if (found != moved_.end()) return found->second;
    DeviceBuffer buffer(device_, bytes);
    ops::upload(device_, buffer.data(), host, bytes);
    void* there = buffer.data();
    into_.device_owned.push_back(std::move(buffer));
    moved_[host] = there;
    return there;
  }
  void tensor(Tensor& t) {
    if (!t.data) return;
    ZOFT_CHECK(t.is_contiguous(), "to_device: weight {} is not contiguous", t.shape_string());
    t.data = move(t.data, t.nbytes());
    t.device = device_;
  }
  void floats(const float*& p, int64_t n) {
    if (p) p = static_cast<const float*>(move(p, size_t(n) * sizeof(float)));
  }
  void linear(LinearWeights& w) {
    tensor(w.weight);
    floats(w.bias, w.out_features);
  }
  void norm(NormWeights& w, int64_t dim) {
    floats(w.weight, dim);
    floats(w.bias, dim);
  }

 private:
  Device device_;
  ModelWeights& into_;
  std::unordered_map<const void*, void*> moved_;
};

}  // namespace

Decoder Decoder::to_device(Device device) const {
  if (!ops::available(device))
    fail("device {}: {}; use the cpu", device_name(device), ops::unavailable_reason(device));
  ZOFT_CHECK(this->device() == Device::CPU, "to_device: the model is already on {}",
             device_name(this->device()));
  ZOFT_CHECK(!residency_, "to_device: an offloaded model (placement.max_memory) stays on the cpu");
  const ModelConfig& c = config_;
  Decoder d;
  d.arch_ = arch_;
  d.config_ = config_;
  d.rope_global_ = rope_global_;
  d.rope_local_ = rope_local_;
  ModelWeights& w = d.weights_;
  const ModelWeights& from = weights_;
  w.compute_dtype = from.compute_dtype;
  w.device = device;
  w.trainable = true;  // every tensor is an owned, writable copy
  w.weights_are_kn = from.weights_are_kn;
  w.embed_tokens = from.embed_tokens;
  w.embed_positions = from.embed_positions;
  w.final_norm = from.final_norm;
  w.lm_head = from.lm_head;
  w.layers = from.layers;
  w.parameter_count = from.parameter_count;
  w.checkpoint_bytes = from.checkpoint_bytes;
  w.checkpoint_dtypes = from.checkpoint_dtypes;

  Uploader up(device, w);
  const int64_t H = c.hidden_size, D = c.head_dim;
  up.tensor(w.embed_tokens);
  up.tensor(w.embed_positions);
  for (LayerWeights& L : w.layers) {
    for (NormWeights* n : {&L.attn_norm, &L.post_attn_norm, &L.ffn_norm, &L.post_ffn_norm})
      up.norm(*n, H);
    up.norm(L.q_norm, D);
    up.norm(L.k_norm, D);
    for (LinearWeights* l : {&L.q, &L.k, &L.v, &L.qkv, &L.o, &L.gate, &L.up, &L.down}) {
      if (l->lora)  // host memory and CPU ops (model/lora.h)
        fail("to_device: LoRA adapters run on the cpu only: merge the adapter first (zoft merge)");
      up.linear(*l);
    }
  }
  up.norm(w.final_norm, H);
  up.linear(w.lm_head);
  d.upload_rope_tables();
  ops::synchronize(device);  // the host copies may go once this returns
  return d;
}

void Decoder::upload_rope_tables() {
  if (config_.positions != PositionKind::Rope || device() == Device::CPU) return;
  auto upload_freq = [this](const RopeTable& rope, DeviceBuffer& into) {
    const size_t bytes = rope.inv_freq.size() * sizeof(float);
    into = DeviceBuffer(device(), std::max<size_t>(bytes, 1));
    ops::upload(device(), into.data(), rope.inv_freq.data(), bytes);
  };
  upload_freq(rope_global_, rope_freq_global_);
  upload_freq(rope_local_, rope_freq_local_);
}

void Decoder::set_compute_device(Device device) {
  if (device != Device::CPU && !ops::available(device))
    fail("device {}: {}; use the cpu", device_name(device), ops::unavailable_reason(device));
  ZOFT_CHECK(!residency_, "set_compute_device: detach the residency first");
  ZOFT_CHECK(weights_.device_owned.empty(), "set_compute_device: the model was placed (to_device)");
  ModelWeights& w = weights_;
  w.device = device;
  for (Tensor* t : {&w.embed_tokens, &w.embed_positions, &w.lm_head.weight}) t->device = device;
  for (LayerWeights& L : w.layers)
    for (LinearWeights* l : {&L.q, &L.k, &L.v, &L.qkv, &L.o, &L.gate, &L.up, &L.down}) {
      if (l->lora && device != Device::CPU)
        fail("the GPU tier runs no LoRA adapter: merge the adapter first (zoft merge)");
      l->weight.device = device;
    }
  upload_rope_tables();
  ops::synchronize(device);
}

const float* Decoder::inv_freq(bool sliding) const {
  const RopeTable& rope = sliding ? rope_local_ : rope_global_;
  if (device() == Device::CPU) return rope.inv_freq.data();
  return (sliding ? rope_freq_local_ : rope_freq_global_).as<float>();
}

void Decoder::make_rope_tables() {
  if (config_.positions != PositionKind::Rope) return;
  rope_global_ = make_rope_table(config_.rope, config_.head_dim);
  rope_local_ = make_rope_table(config_.rope_local, config_.head_dim);
}

void Decoder::norm(const NormWeights& w, const float* x, float* out, int64_t rows,
                   int64_t dim) const {
  if (config_.norm == NormKind::LayerNorm)
    ops::layer_norm(device(), x, w.weight, w.bias, out, rows, dim, config_.norm_eps);
  else
    ops::rms_norm(device(), x, w.weight, out, rows, dim, config_.norm_eps,
                  config_.norm_unit_offset);
}

void Decoder::linear(const LinearWeights& w, const float* x, int64_t rows, float* y) const {
  ops::linear(x, rows, w.in_features, w.weight, weights_.weights_are_kn, w.bias, y);
  if (w.lora) lora_forward(*w.lora, x, rows, y);  // --- LoRA hook (model/lora.h) ---
}

void Decoder::head_logits(const float* hidden, int64_t rows, float* logits) const {
  ops::linear(hidden, rows, config_.hidden_size, weights_.lm_head.weight, false, nullptr, logits);
  if (config_.final_softcap > 0)
    ops::softcap(device(), logits, rows * config_.vocab_size, config_.final_softcap);
}

void Decoder::head_logits_to_host(const float* hidden, int64_t rows, float* host_logits) {
  if (device() == Device::CPU) return head_logits(hidden, rows, host_logits);
  const int64_t H = config_.hidden_size, V = config_.vocab_size;
  const int64_t chunk = std::min(std::max<int64_t>(1, (int64_t(64) << 20) / V), rows);  // 256 MiB
  float* logits = ensure_floats(scratch_.logits, device(), chunk * V);
  for (int64_t begin = 0; begin < rows; begin += chunk) {
    int64_t n = std::min(chunk, rows - begin);
    head_logits(hidden + begin * H, n, logits);
    ops::download(device(), host_logits + begin * V, logits, size_t(n * V) * sizeof(float));
  }
}

float* Decoder::pick_rows(const float* hidden, const int64_t* rows, int64_t n, DeviceBuffer& into) {
  const int64_t H = config_.hidden_size;
  float* picked = ensure_floats(into, device(), n * H);
  for (int64_t i = 0; i < n; ++i)
    ops::copy(device(), picked + i * H, hidden + rows[i] * H, size_t(H) * sizeof(float));
  return picked;
}

const int32_t* Decoder::on_device(const std::vector<int32_t>& ints, DeviceBuffer& into) {
  if (device() == Device::CPU) return ints.data();
  auto* staged = reinterpret_cast<int32_t*>(ensure_floats(into, device(), int64_t(ints.size())));
  ops::upload(device(), staged, ints.data(), ints.size() * sizeof(int32_t));
  return staged;
}

void Decoder::candidate_logits(const float* hidden, const std::vector<int64_t>& rows,
                               const std::vector<int32_t>& ids, float* out) const {
  const int64_t H = config_.hidden_size, V = config_.vocab_size;
  const int64_t n = int64_t(rows.size()), m = int64_t(ids.size());
  const Tensor& head = weights_.lm_head.weight;
  const size_t row_bytes = size_t(H) * dtype_size(head.dtype);
  DeviceBuffer picked_w(device(), size_t(m) * row_bytes);
  for (int64_t j = 0; j < m; ++j) {
    ZOFT_CHECK(ids[size_t(j)] >= 0 && ids[size_t(j)] < V,
               "candidate token {} is outside the vocabulary of {}", ids[size_t(j)], V);
    ops::copy(device(), static_cast<uint8_t*>(picked_w.data()) + size_t(j) * row_bytes,
              static_cast<const uint8_t*>(head.data) + size_t(ids[size_t(j)]) * row_bytes,
              row_bytes);
  }
  DeviceBuffer picked_h(device(), size_t(n * H) * sizeof(float));
  for (int64_t i = 0; i < n; ++i)
    ops::copy(device(), picked_h.as<float>() + i * H, hidden + rows[size_t(i)] * H,
              size_t(H) * sizeof(float));
  Tensor w(picked_w.data(), head.dtype, {m, H});
  w.device = device();
  DeviceBuffer result(device(), size_t(n * m) * sizeof(float));
  float* y = device() == Device::CPU ? out : result.as<float>();
  ops::linear(picked_h.as<float>(), n, H, w, false, nullptr, y);
  if (config_.final_softcap > 0) ops::softcap(device(), y, n * m, config_.final_softcap);
  if (y != out) ops::download(device(), out, y, size_t(n * m) * sizeof(float));
}

void Decoder::logits(const TokenBatch& batch, float* out) {
  KvCache cache(config_, batch.batch, batch.seq, true, device());
  ForwardState state;
  forward_hidden(batch, cache, state);
  head_logits_to_host(state.h(), batch.rows(), out);
}

void Decoder::forward_cached(const TokenBatch& batch, KvCache& cache,
                             const std::vector<int64_t>& rows, float* out) {
  for (int64_t row : rows)
    ZOFT_CHECK(row >= 0 && row < batch.rows(), "row {} outside the batch", row);
  ForwardState state;
  forward_hidden(batch, cache, state);
  float* picked = pick_rows(state.h(), rows.data(), int64_t(rows.size()), scratch_.picked);
  head_logits_to_host(picked, int64_t(rows.size()), out);
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
  KvCache cache(config_, batch.batch, batch.seq, true, device());
  ForwardState state;
  forward_hidden(batch, cache, state);
  losses_from_hidden(state.h(), batch.rows(), targets, loss);
}

void Decoder::losses_from_hidden(const float* hidden, int64_t M, const int32_t* targets,
                                 float* loss) {
  const int64_t V = config_.vocab_size;
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
      ensure_floats(scratch_.logits, device(), std::min<int64_t>(chunk, int64_t(rows.size())) * V);
  float* device_loss = ensure_floats(scratch_.loss, device(), chunk);
  std::vector<int32_t> chunk_targets(static_cast<size_t>(chunk));
  std::vector<float> chunk_loss(static_cast<size_t>(chunk));
  for (size_t begin = 0; begin < rows.size(); begin += size_t(chunk)) {
    int64_t n = std::min<int64_t>(chunk, int64_t(rows.size() - begin));
    chunk_targets.resize(size_t(n));
    for (int64_t j = 0; j < n; ++j) chunk_targets[size_t(j)] = targets[rows[begin + size_t(j)]];
    float* picked = pick_rows(hidden, rows.data() + begin, n, scratch_.picked);
    head_logits(picked, n, logits);
    ops::cross_entropy(device(), logits, on_device(chunk_targets, scratch_.ints), n, V,
                       device_loss);
    ops::download(device(), chunk_loss.data(), device_loss, size_t(n) * sizeof(float));
    for (int64_t j = 0; j < n; ++j) loss[rows[begin + size_t(j)]] = chunk_loss[size_t(j)];
  }
}

}  // namespace zoft
