// Decoder::loss_and_grad: the training forward, the LM head + cross-entropy backward (chunked
// by rows), the final norm and the embeddings. The layers are in model/layer_backward.cc.
#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "backend/ops_backward.h"
#include "core/error.h"
#include "model/backprop.h"
#include "model/lora.h"
#include "model/parameters.h"
#include "model/scratch.h"

namespace zoft {

namespace {

using GradMap = std::unordered_map<const void*, float*>;

// The gradient buffer of the parameter stored at `weight` (null when the model has none).
float* grad_of(const GradMap& map, const void* weight, const char* what) {
  if (!weight) return nullptr;
  auto it = map.find(weight);
  ZOFT_CHECK(it != map.end(), "loss_and_grad: the model's {} is not in its parameter list", what);
  return it->second;
}

LinearGrads linear_grads(const GradMap& map, const LinearWeights& w) {
  return {grad_of(map, w.weight.data, "projection"), grad_of(map, w.bias, "bias")};
}

NormGrads norm_grads(const GradMap& map, const NormWeights& w) {
  return {grad_of(map, w.weight, "norm weight"), grad_of(map, w.bias, "norm bias")};
}

LayerGrads layer_grads(const GradMap& map, const LayerWeights& w) {
  LayerGrads g;
  g.attn_norm = norm_grads(map, w.attn_norm);
  g.q_norm = norm_grads(map, w.q_norm);
  g.k_norm = norm_grads(map, w.k_norm);
  g.post_attn_norm = norm_grads(map, w.post_attn_norm);
  g.ffn_norm = norm_grads(map, w.ffn_norm);
  g.post_ffn_norm = norm_grads(map, w.post_ffn_norm);
  g.q = linear_grads(map, w.q);
  g.k = linear_grads(map, w.k);
  g.v = linear_grads(map, w.v);
  g.qkv = linear_grads(map, w.qkv);
  g.o = linear_grads(map, w.o);
  g.gate = linear_grads(map, w.gate);
  g.up = linear_grads(map, w.up);
  g.down = linear_grads(map, w.down);
  return g;
}

// The rows with a target, checked against the vocabulary before anything is computed.
std::vector<int64_t> target_rows(const int32_t* targets, int64_t rows, int64_t vocab) {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < rows; ++i) {
    if (targets[i] < 0) continue;
    if (targets[i] >= vocab)
      fail("target id {} is outside the vocabulary of {} tokens", targets[i], vocab);
    out.push_back(i);
  }
  return out;
}

}  // namespace

double Decoder::loss_and_grad(const TokenBatch& batch, const int32_t* targets, float loss_scale,
                              std::vector<Buffer>& grads, const BackwardOptions& options) {
  ZOFT_CHECK(
      int64_t(batch.ids.size()) == batch.rows() && int64_t(batch.mask.size()) == batch.rows(),
      "token batch holds {} ids and {} mask entries for {} x {}", batch.ids.size(),
      batch.mask.size(), batch.batch, batch.seq);
  ZOFT_CHECK(!residency_, "first-order training needs every weight resident (no offload)");
  ZOFT_CHECK(device() == Device::CPU,
             "first-order training runs on the cpu only (the model is on {})",
             device_name(device()));
  Backprop backprop(*this, batch, grads, options);
  return backprop.run(targets, loss_scale);
}

Backprop::Backprop(Decoder& model, const TokenBatch& batch, std::vector<Buffer>& grads,
                   const BackwardOptions& options)
    : model_(model),
      c_(model.config_),
      w_(model.weights_),
      batch_(batch),
      options_(options),
      rows_(batch.rows()),
      cache_(model.config_, batch.batch, batch.seq, true) {
  model_.begin_forward(batch, cache_, state_);
  bind_gradients(grads);
}

// Allocates (when `grads` is empty) and checks one f32 gradient buffer per parameter; maps each
// parameter's storage to its buffer.
static GradMap bind_buffers(const std::vector<ParameterRef>& params, std::vector<Buffer>& grads) {
  if (grads.empty())
    for (const ParameterRef& p : params) {
      size_t bytes = size_t(p.tensor.numel()) * sizeof(float);
      grads.emplace_back(bytes);
      std::memset(grads.back().data(), 0, bytes);
    }
  ZOFT_CHECK(grads.size() == params.size(), "loss_and_grad: {} gradient buffers for {} parameters",
             grads.size(), params.size());
  GradMap map;
  for (size_t i = 0; i < params.size(); ++i) {
    size_t need = size_t(params[i].tensor.numel()) * sizeof(float);
    ZOFT_CHECK(grads[i].size() >= need,
               "loss_and_grad: gradient buffer of {} holds {} bytes, needs {}", params[i].name,
               grads[i].size(), need);
    map.emplace(params[i].tensor.data, grads[i].as<float>());
  }
  return map;
}

void Backprop::bind_gradients(std::vector<Buffer>& grads) {
  if (options_.lora) return bind_lora_gradients(grads);
  GradMap map = bind_buffers(list_parameters(model_), grads);
  g_.embed_tokens = grad_of(map, w_.embed_tokens.data, "embedding table");
  if (c_.positions == PositionKind::Learned)
    g_.embed_positions = grad_of(map, w_.embed_positions.data, "position table");
  g_.final_norm = norm_grads(map, w_.final_norm);
  // A tied head may be a converted copy of the table (not yet trainable): same gradient.
  g_.lm_head =
      c_.tie_embeddings ? g_.embed_tokens : grad_of(map, w_.lm_head.weight.data, "LM head");
  for (const LayerWeights& lw : w_.layers) g_.layers.push_back(layer_grads(map, lw));
}

// LoRA: gradients for the adapters only; every base weight's is null (frozen).
void Backprop::bind_lora_gradients(std::vector<Buffer>& grads) {
  GradMap map = bind_buffers(lora_parameters(*options_.lora), grads);
  g_.layers.resize(w_.layers.size());
  for (size_t l = 0; l < w_.layers.size(); ++l) {
    const LayerWeights& lw = w_.layers[l];
    LayerGrads& g = g_.layers[l];
    for (auto [w, lg] : {std::pair{&lw.q, &g.q},
                         {&lw.k, &g.k},
                         {&lw.v, &g.v},
                         {&lw.qkv, &g.qkv},
                         {&lw.o, &g.o},
                         {&lw.gate, &g.gate},
                         {&lw.up, &g.up},
                         {&lw.down, &g.down}}) {
      if (!w->lora) continue;
      lg->lora_a = grad_of(map, w->lora->a.view.data, "LoRA A");
      lg->lora_b = grad_of(map, w->lora->b.view.data, "LoRA B");
    }
  }
  lowest_layer_ = int64_t(w_.layers.size());
  for (const LoraModule& m : options_.lora->modules())
    lowest_layer_ = std::min(lowest_layer_, m.layer);
}

double Backprop::run(const int32_t* targets, float loss_scale) {
  const int64_t H = c_.hidden_size, L = c_.num_layers;
  std::vector<int64_t> rows = target_rows(targets, rows_, c_.vocab_size);
  forward();
  Buffer d_final_buffer, dh_buffer;
  float* d_final = ensure_floats(d_final_buffer, rows_ * H);
  double loss = head_backward(targets, rows, loss_scale, d_final);
  state_.hidden = DeviceBuffer();
  float* dh = ensure_floats(dh_buffer, rows_ * H);
  norm_backward(w_.final_norm, g_.final_norm, block_inputs_[size_t(L)].as<float>(), d_final, dh,
                rows_, H);
  d_final_buffer = Buffer();
  // LoRA: nothing below the lowest adapted layer has a gradient.
  for (int64_t layer = L - 1; layer >= lowest_layer_; --layer) {
    LayerActs& acts = acts_[options_.checkpoint_blocks ? 0 : size_t(layer)];
    if (options_.checkpoint_blocks) recompute_layer(layer, acts);
    layer_backward(layer, block_inputs_[size_t(layer)].as<float>(), acts, dh);
    if (!options_.checkpoint_blocks) acts = LayerActs();  // done with it
    block_inputs_[size_t(layer) + 1] = Buffer();
  }
  if (g_.embed_tokens) embeddings_backward(dh);
  return loss;
}

// The inference blocks in order (Decoder::run_block), keeping each block's input and every
// layer's internals (with checkpointing: one layer's, overwritten). state_.hidden ends as the
// final hidden states.
void Backprop::forward() {
  const int64_t H = c_.hidden_size, L = c_.num_layers;
  auto keep_input = [&](int64_t layer) {  // layer L: the final norm's input
    float* kept = ensure_floats(block_inputs_[size_t(layer)], rows_ * H);
    std::memcpy(kept, state_.h(), size_t(rows_ * H) * sizeof(float));
  };
  block_inputs_.resize(size_t(L) + 1);
  acts_.resize(options_.checkpoint_blocks ? 1 : size_t(L));
  model_.run_block(0, state_);
  for (int64_t layer = 0; layer < L; ++layer) {
    keep_input(layer);
    model_.layer_forward(layer, state_, &acts_[options_.checkpoint_blocks ? 0 : size_t(layer)]);
  }
  keep_input(L);
  model_.run_block(L + 1, state_);
}

// Checkpointing: the layer's forward again, from its kept input, to refill `a`.
void Backprop::recompute_layer(int64_t layer, LayerActs& a) {
  const int64_t H = c_.hidden_size;
  std::memcpy(ensure_floats(state_.hidden, Device::CPU, rows_ * H),
              block_inputs_[size_t(layer)].as<float>(), size_t(rows_ * H) * sizeof(float));
  model_.layer_forward(layer, state_, &a);
}

// Decoder::losses_from_hidden's chunks (same logits, same losses) followed by their backward:
// the [rows, vocab] logits never exist in full. One [chunk, vocab] buffer serves both: it is the
// decoder's own logits scratch (which an evaluation already grew), and the cross-entropy
// gradient overwrites the logits in place (each element reads only itself). Only a final
// softcap, whose backward needs the capped logits, takes a second buffer. d_hidden: [rows,
// hidden], zero on rows without a target.
double Backprop::head_backward(const int32_t* targets, const std::vector<int64_t>& rows,
                               float loss_scale, float* d_hidden) {
  const int64_t H = c_.hidden_size, V = c_.vocab_size, n_rows = int64_t(rows.size());
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>((int64_t(8) << 20) / V, n_rows));
  std::memset(d_hidden, 0, size_t(rows_ * H) * sizeof(float));
  float* logits = ensure_floats(model_.scratch_.logits, Device::CPU, chunk * V);
  Buffer capped_grad;
  float* d_logits = c_.final_softcap > 0 ? ensure_floats(capped_grad, chunk * V) : logits;
  std::vector<float> picked(size_t(chunk * H)), d_picked(size_t(chunk * H));
  std::vector<int32_t> chunk_targets(static_cast<size_t>(chunk));
  std::vector<float> chunk_loss(static_cast<size_t>(chunk)), d_loss(size_t(chunk), loss_scale);
  const float* hidden = state_.h();
  double loss = 0;
  for (int64_t begin = 0; begin < n_rows; begin += chunk) {
    const int64_t n = std::min(chunk, n_rows - begin);
    for (int64_t j = 0; j < n; ++j) {
      int64_t r = rows[size_t(begin + j)];
      std::memcpy(picked.data() + j * H, hidden + r * H, size_t(H) * sizeof(float));
      chunk_targets[size_t(j)] = targets[r];
    }
    model_.head_logits(picked.data(), n, logits);
    cpu::cross_entropy(logits, chunk_targets.data(), n, V, chunk_loss.data());
    for (int64_t j = 0; j < n; ++j) loss += chunk_loss[size_t(j)];

    cpu::cross_entropy_backward(logits, chunk_targets.data(), d_loss.data(), n, V, d_logits);
    if (c_.final_softcap > 0)  // logits hold the capped values the backward needs
      cpu::softcap_backward(logits, d_logits, d_logits, n * V, c_.final_softcap);
    cpu::linear_backward_input(d_logits, n, V, w_.lm_head.weight, false, d_picked.data());
    if (g_.lm_head)
      cpu::linear_backward_weight(d_logits, picked.data(), n, V, H, false, g_.lm_head, nullptr);
    for (int64_t j = 0; j < n; ++j)
      std::memcpy(d_hidden + rows[size_t(begin + j)] * H, d_picked.data() + j * H,
                  size_t(H) * sizeof(float));
  }
  return loss;
}

// Pad rows are skipped (id -1): they were embedded as token 0 but feed no loss.
void Backprop::embeddings_backward(const float* dh) {
  const int64_t H = c_.hidden_size;
  std::vector<int32_t> ids(size_t(rows_), -1);
  for (int64_t i = 0; i < rows_; ++i)
    if (batch_.mask[size_t(i)]) ids[size_t(i)] = state_.embed_ids[size_t(i)];
  cpu::embedding_backward(dh, ids.data(), rows_, H, c_.embedding_scale, g_.embed_tokens);
  if (c_.positions != PositionKind::Learned) return;
  for (int64_t i = 0; i < rows_; ++i)
    if (batch_.mask[size_t(i)])
      ids[size_t(i)] = state_.positions[size_t(i)] + int32_t(c_.position_offset);
  cpu::embedding_backward(dh, ids.data(), rows_, H, 1.0f, g_.embed_positions);
}

void Backprop::norm_backward(const NormWeights& w, const NormGrads& g, const float* x,
                             const float* dy, float* dx, int64_t rows, int64_t dim) const {
  if (c_.norm == NormKind::LayerNorm)
    cpu::layer_norm_backward(x, w.weight, dy, dx, g.weight, g.bias, rows, dim, c_.norm_eps);
  else
    cpu::rms_norm_backward(x, w.weight, dy, dx, g.weight, rows, dim, c_.norm_eps,
                           c_.norm_unit_offset);
}

// dx = dy . W (overwritten); W's and b's gradients accumulate.
void Backprop::linear_backward(const LinearWeights& w, const LinearGrads& g, const float* x,
                               const float* dy, int64_t rows, float* dx) const {
  const bool kn = w_.weights_are_kn;
  cpu::linear_backward_input(dy, rows, w.out_features, w.weight, kn, dx);
  if (g.weight || g.bias)
    cpu::linear_backward_weight(dy, x, rows, w.out_features, w.in_features, kn, g.weight, g.bias);
  if (w.lora) lora_backward(*w.lora, x, dy, rows, dx, g.lora_a, g.lora_b);  // --- LoRA hook ---
}

}  // namespace zoft
