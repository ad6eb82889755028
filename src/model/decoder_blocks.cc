// The decoder's forward pass, one block at a time (see ForwardState in decoder.h).
#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "model/backprop.h"
#include "model/decoder.h"
#include "model/scratch.h"

namespace zoft {

namespace {

// Copies columns [begin, begin + width) of a [rows, stride] matrix into a [rows, width] one.
void copy_columns(Device device, const float* src, int64_t rows, int64_t stride, int64_t begin,
                  int64_t width, float* dst) {
  ops::copy_rows(device, dst, size_t(width) * sizeof(float), src + begin,
                 size_t(stride) * sizeof(float), size_t(width) * sizeof(float), rows);
}

}  // namespace

void Decoder::begin_forward(const TokenBatch& batch, KvCache& cache, ForwardState& state) const {
  const ModelConfig& c = config_;
  const int64_t B = batch.batch, T = batch.seq, M = batch.rows();
  ZOFT_CHECK(B == cache.batch_, "batch of {} sequences given to a cache made for {}", B,
             cache.batch_);
  ZOFT_CHECK(cache.length_ + T <= cache.capacity_,
             "sequence of {} tokens exceeds the cache capacity {}", cache.length_ + T,
             cache.capacity_);
  ZOFT_CHECK(int64_t(batch.ids.size()) == M && int64_t(batch.mask.size()) == M,
             "token batch holds {} ids and {} mask entries for {} x {}", batch.ids.size(),
             batch.mask.size(), B, T);
  state.batch = &batch;
  state.cache = &cache;
  ensure_floats(state.hidden, device(), M * c.hidden_size);

  // Positions count real tokens only, so a left-padded sequence is computed as if unpadded.
  state.positions.assign(size_t(M), 0);
  for (int64_t b = 0; b < B; ++b) {
    int32_t seen = cache.next_position_[size_t(b)];
    for (int64_t t = 0; t < T; ++t) {
      bool real = batch.mask[size_t(b * T + t)] != 0;
      state.positions[size_t(b * T + t)] = real ? seen : std::max(seen - 1, 0);
      seen += real;
      cache.valid_[size_t(b * cache.capacity_ + cache.length_ + t)] = real;
    }
  }
  const int64_t kv_len = cache.length_ + T;
  state.key_valid.resize(size_t(B * kv_len));
  for (int64_t b = 0; b < B; ++b)
    std::memcpy(state.key_valid.data() + b * kv_len, cache.valid_.data() + b * cache.capacity_,
                size_t(kv_len));

  // Padding ids may be anything (e.g. -100 from a collator); embed them as token 0.
  state.embed_ids.assign(size_t(M), 0);
  for (int64_t i = 0; i < M; ++i) {
    int32_t id = batch.ids[size_t(i)];
    if (!batch.mask[size_t(i)]) continue;
    if (id < 0 || id >= c.vocab_size)
      fail("token id {} is outside the vocabulary of {} tokens", id, c.vocab_size);
    state.embed_ids[size_t(i)] = id;
  }
  // Every architecture, not only learned positions: RoPE past the trained context computes
  // something the model never saw (HF's rope scaling, if any, is already in max_positions).
  int32_t last = M > 0 ? *std::max_element(state.positions.begin(), state.positions.end()) : 0;
  if (last >= c.max_positions)
    fail("{} tokens exceed the model's max_position_embeddings {}: use at most {} tokens", last + 1,
         c.max_positions, c.max_positions);
  stage_on_device(state);
}

// The forward reads positions, key masks and ids where it runs: on the CPU the host vectors
// themselves, elsewhere one upload of all three.
void Decoder::stage_on_device(ForwardState& state) const {
  if (device() == Device::CPU) {
    state.device_positions = state.positions.data();
    state.device_key_valid = state.key_valid.data();
    state.device_embed_ids = state.embed_ids.data();
    return;
  }
  const size_t ints = state.positions.size() * sizeof(int32_t);
  const size_t mask = (state.key_valid.size() + 3) / 4 * 4;  // keeps the ids 4-byte aligned
  state.staged = DeviceBuffer(device(), 2 * ints + mask + 1);
  auto* base = static_cast<uint8_t*>(state.staged.data());
  ops::upload(device(), base, state.positions.data(), ints);
  ops::upload(device(), base + ints, state.embed_ids.data(), ints);
  ops::upload(device(), base + 2 * ints, state.key_valid.data(), state.key_valid.size());
  state.device_positions = reinterpret_cast<const int32_t*>(base);
  state.device_embed_ids = reinterpret_cast<const int32_t*>(base + ints);
  state.device_key_valid = base + 2 * ints;
}

void Decoder::end_forward(ForwardState& state) const {
  const TokenBatch& batch = *state.batch;
  KvCache& cache = *state.cache;
  for (int64_t b = 0; b < batch.batch; ++b)
    for (int64_t t = 0; t < batch.seq; ++t)
      cache.next_position_[size_t(b)] += batch.mask[size_t(b * batch.seq + t)];
  cache.length_ += batch.seq;
}

void Decoder::run_block(int64_t block, ForwardState& state, const EmbeddingRowsFn* embedding_rows) {
  ZOFT_CHECK(block >= 0 && block < num_blocks(), "block {} outside [0, {})", block, num_blocks());
  if (residency_ && !residency_->held(block)) {  // offload: a caller's plain loop over blocks
    residency_->acquire(block);
    try {
      run_block(block, state, embedding_rows);
    } catch (...) {
      residency_->release(block, false);
      throw;
    }
    residency_->release(block, false);
    return;
  }
  const int64_t M = state.batch->rows(), H = config_.hidden_size;
  if (block == 0) {
    embed_forward(state, embedding_rows);
  } else if (block <= config_.num_layers) {
    layer_forward(block - 1, state);
  } else {
    float* x = ensure_floats(scratch_.normed, device(), M * H);
    norm(weights_.final_norm, state.h(), x, M, H);
    ops::copy(device(), state.h(), x, size_t(M * H) * sizeof(float));
  }
}

void Decoder::embed_forward(ForwardState& state, const EmbeddingRowsFn* embedding_rows) {
  const ModelConfig& c = config_;
  const int64_t M = state.batch->rows(), H = c.hidden_size;
  float* h = state.h();
  if (embedding_rows) {  // e.g. the ZO2 stepper's perturbed rows of a tied table
    (*embedding_rows)(state.embed_ids.data(), M, c.embedding_scale, h);
  } else {
    ops::embedding(weights_.embed_tokens, state.device_embed_ids, M, c.embedding_scale, h);
  }
  if (c.positions == PositionKind::Learned) {
    std::vector<int32_t> rows(static_cast<size_t>(M));
    for (int64_t i = 0; i < M; ++i)
      rows[size_t(i)] = state.positions[size_t(i)] + int32_t(c.position_offset);
    float* tmp = ensure_floats(scratch_.tmp, device(), M * H);
    ops::embedding(weights_.embed_positions, on_device(rows, scratch_.ints), M, 1.0f, tmp);
    ops::add_inplace(device(), h, tmp, M * H);
  }
}

// Where one layer's forward writes its intermediates. Inference (no sink) reuses scratch for
// every value that is dead by the time the next one is written; training writes what the
// backward reads to the sink's own buffers.
struct Decoder::LayerBuffers {
  float *attn_in, *q_raw, *k_raw, *q, *k, *v, *attn, *o_out;
  float *mlp_in, *gate, *up, *act, *down_out;
  float* branch;      // a post-norm's output, added to the residual stream
  bool for_backward;  // the forward of a first-order step (a sink keeps what its backward reads)
};

Decoder::LayerBuffers Decoder::layer_buffers(int64_t layer, int64_t rows, LayerActs* sink) {
  const ModelConfig& c = config_;
  const LayerWeights& w = weights_.layers[size_t(layer)];
  const int64_t M = rows, H = c.hidden_size, qd = c.q_dim(), kd = c.kv_dim();
  const int64_t I = c.intermediate_size;
  Scratch& s = scratch_;
  const Device dev = device();
  LayerBuffers b;
  b.for_backward = sink != nullptr;
  float* tmp = ensure_floats(s.tmp, dev, M * std::max(H, qd));
  b.branch = ensure_floats(s.normed, dev, M * H);
  if (!sink) {
    b.attn_in = b.mlp_in = b.branch;  // each norm's output is dead once projected
    b.q = ensure_floats(s.q, dev, M * qd);
    b.k = ensure_floats(s.k, dev, M * kd);
    b.v = ensure_floats(s.v, dev, M * kd);
    b.attn = ensure_floats(s.attn, dev, M * qd);
    b.q_raw = c.qk_norm ? tmp : b.q;     // tmp and attn are free until the attention
    b.k_raw = c.qk_norm ? b.attn : b.k;  // kv_dim <= q_dim
    b.o_out = b.down_out = tmp;
    b.up = ensure_floats(s.up, dev, M * I);
    b.gate = c.gated_mlp ? ensure_floats(s.gate, dev, M * I) : nullptr;
    b.act = c.gated_mlp ? b.gate : b.up;  // the activation runs in place
    return b;
  }
  ZOFT_CHECK(dev == Device::CPU, "the backward (first-order training) runs on the cpu only");
  LayerActs& a = *sink;
  b.attn_in = ensure_floats(a.attn_in, M * H);
  b.q = ensure_floats(a.q, M * qd);
  b.k = ensure_floats(a.k, M * kd);
  b.v = ensure_floats(a.v, M * kd);
  b.q_raw = c.qk_norm ? ensure_floats(a.q_raw, M * qd) : b.q;
  b.k_raw = c.qk_norm ? ensure_floats(a.k_raw, M * kd) : b.k;
  b.attn = ensure_floats(a.attn, M * qd);
  b.o_out = w.post_attn_norm.weight ? ensure_floats(a.o_out, M * H) : tmp;
  ensure_floats(a.mid, M * H);  // layer_forward copies the residual stream there
  b.mlp_in = ensure_floats(a.mlp_in, M * H);
  b.up = ensure_floats(a.up, M * I);
  b.gate = c.gated_mlp ? ensure_floats(a.gate, M * I) : nullptr;
  b.act = ensure_floats(a.act, M * I);
  b.down_out = w.post_ffn_norm.weight ? ensure_floats(a.down_out, M * H) : tmp;
  return b;
}

// h += y, or h += post_norm(y) for sandwich norms (Gemma).
void Decoder::add_branch(const NormWeights& post_norm, const float* y, float* branch, float* h,
                         int64_t rows) const {
  const int64_t H = config_.hidden_size;
  if (post_norm.weight) {
    norm(post_norm, y, branch, rows, H);
    ops::add_inplace(device(), h, branch, rows * H);
  } else {
    ops::add_inplace(device(), h, y, rows * H);
  }
}

// sink: when set, the intermediates the backward needs are kept there (model/backprop.h).
void Decoder::layer_forward(int64_t layer, ForwardState& state, LayerActs* sink) {
  const int64_t M = state.batch->rows();
  LayerBuffers b = layer_buffers(layer, M, sink);
  attention_block(layer, state, b);
  if (sink)  // the MLP norm's input, for its backward (on the cpu: layer_buffers checks)
    std::memcpy(sink->mid.as<float>(), state.h(), size_t(M * config_.hidden_size) * sizeof(float));
  mlp_block(layer, state, b);
}

// h += attention(attn_norm(h)).
void Decoder::attention_block(int64_t layer, ForwardState& state, const LayerBuffers& b) {
  const ModelConfig& c = config_;
  const LayerWeights& w = weights_.layers[size_t(layer)];
  const TokenBatch& batch = *state.batch;
  KvCache& cache = *state.cache;
  const int64_t M = batch.rows(), H = c.hidden_size, D = c.head_dim;
  const int64_t qd = c.q_dim(), kd = c.kv_dim();
  const Device dev = device();
  float* h = state.h();
  norm(w.attn_norm, h, b.attn_in, M, H);
  if (w.qkv.weight.data) {
    float* qkv = ensure_floats(scratch_.qkv, dev, M * (qd + 2 * kd));
    linear(w.qkv, b.attn_in, M, qkv);
    copy_columns(dev, qkv, M, qd + 2 * kd, 0, qd, b.q_raw);
    copy_columns(dev, qkv, M, qd + 2 * kd, qd, kd, b.k_raw);
    copy_columns(dev, qkv, M, qd + 2 * kd, qd + kd, kd, b.v);
  } else {
    linear(w.q, b.attn_in, M, b.q_raw);
    linear(w.k, b.attn_in, M, b.k_raw);
    linear(w.v, b.attn_in, M, b.v);
  }
  if (c.qk_norm) {  // per-head RMSNorm
    norm(w.q_norm, b.q_raw, b.q, M * c.num_heads, D);
    norm(w.k_norm, b.k_raw, b.k, M * c.num_kv_heads, D);
  }
  if (c.positions == PositionKind::Rope) {
    const bool sliding = c.is_sliding(layer);
    const RopeTable& rope = sliding ? rope_local_ : rope_global_;
    ops::rope(dev, b.q, state.device_positions, M, c.num_heads, D, rope.rotary_dim,
              inv_freq(sliding), rope.attention_scaling);
    ops::rope(dev, b.k, state.device_positions, M, c.num_kv_heads, D, rope.rotary_dim,
              inv_freq(sliding), rope.attention_scaling);
  }
  // Append this step's keys and values after the cached ones: row i of the batch, T * kd
  // floats, goes to sequence i of the cache at `offset`.
  float* cache_k = cache.keys(layer);
  float* cache_v = cache.values(layer);
  const int64_t T = batch.seq, offset = cache.length_;
  const size_t step_bytes = size_t(T * kd) * sizeof(float);
  const size_t cache_pitch = size_t(cache.capacity_ * kd) * sizeof(float);
  ops::copy_rows(dev, cache_k + offset * kd, cache_pitch, b.k, step_bytes, step_bytes, batch.batch);
  ops::copy_rows(dev, cache_v + offset * kd, cache_pitch, b.v, step_bytes, step_bytes, batch.batch);
  AttentionShape shape;
  shape.batch = batch.batch;
  shape.q_len = T;
  shape.kv_len = offset + T;
  shape.kv_capacity = cache.capacity_;
  shape.q_heads = c.num_heads;
  shape.kv_heads = c.num_kv_heads;
  shape.head_dim = D;
  // A bf16 model's products may use bf16 operands, as in HF's bf16 forward; not where the
  // backward (which recomputes them in f32) follows.
  shape.bf16_products = w.o.weight.dtype == DType::BF16 && !b.for_backward;
  ops::attention(dev, b.q, cache_k, cache_v, state.device_key_valid, b.attn, shape,
                 c.attention_scale, c.layer_window[size_t(layer)], c.attn_softcap);
  linear(w.o, b.attn, M, b.o_out);
  add_branch(w.post_attn_norm, b.o_out, b.branch, h, M);
}

// h += mlp(ffn_norm(h)).
void Decoder::mlp_block(int64_t layer, ForwardState& state, const LayerBuffers& b) {
  const ModelConfig& c = config_;
  const LayerWeights& w = weights_.layers[size_t(layer)];
  const int64_t M = state.batch->rows(), H = c.hidden_size, I = c.intermediate_size;
  float* h = state.h();
  norm(w.ffn_norm, h, b.mlp_in, M, H);
  if (c.gated_mlp) {
    linear(w.gate, b.mlp_in, M, b.gate);
    linear(w.up, b.mlp_in, M, b.up);
    ops::gated_activation(device(), c.activation, b.gate, b.up, I, b.act, M, I);
  } else {
    linear(w.up, b.mlp_in, M, b.up);
    if (b.act != b.up)  // training keeps the pre-activation
      ops::copy(device(), b.act, b.up, size_t(M * I) * sizeof(float));
    ops::activation(device(), c.activation, b.act, M * I);
  }
  linear(w.down, b.act, M, b.down_out);
  add_branch(w.post_ffn_norm, b.down_out, b.branch, h, M);
}

void Decoder::run_blocks(ForwardState& state) {
  for (int64_t block = 0; block < num_blocks(); ++block) {
    if (residency_) residency_->acquire(block);
    run_block(block, state);
    if (residency_) residency_->release(block, false);
  }
}

void Decoder::forward_hidden(const TokenBatch& batch, KvCache& cache, ForwardState& state) {
  begin_forward(batch, cache, state);
  run_blocks(state);
  end_forward(state);
}

}  // namespace zoft
