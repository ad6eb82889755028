#include "model/parameters.h"

#include <cstring>
#include <functional>

#include "core/error.h"

namespace zoft {

namespace {

// Visits every parameter slot of the model with its HF name and block. A matrix slot is a
// Tensor; a vector slot (norm weight, bias) is a const float* with its length.
struct Slot {
  std::string name;
  int64_t block;
  Tensor* matrix = nullptr;
  const float** vector = nullptr;
  int64_t length = 0;
};

void visit(Decoder& model, const std::function<void(const Slot&)>& fn) {
  ModelWeights& w = model.mutable_weights();
  const ArchTensorNames& n = model.arch().tensors;
  const ModelConfig& c = model.config();
  const int64_t last = c.num_layers + 1;
  auto matrix = [&](const char* pattern, int64_t layer, int64_t block, Tensor& t) {
    if (pattern && t.data) fn({layer_tensor_name(pattern, layer) + ".weight", block, &t});
  };
  auto linear = [&](const char* pattern, int64_t layer, LinearWeights& l) {
    if (!pattern || !l.weight.data) return;
    std::string base = layer_tensor_name(pattern, layer);
    fn({base + ".weight", layer + 1, &l.weight});
    if (l.bias) fn({base + ".bias", layer + 1, nullptr, &l.bias, l.out_features});
  };
  auto norm = [&](const char* pattern, int64_t layer, int64_t block, NormWeights& nw, int64_t dim) {
    if (!pattern || !nw.weight) return;
    std::string base = layer_tensor_name(pattern, layer);
    fn({base + ".weight", block, nullptr, &nw.weight, dim});
    if (nw.bias) fn({base + ".bias", block, nullptr, &nw.bias, dim});
  };

  matrix(n.embed_tokens, 0, c.tie_embeddings ? last : 0, w.embed_tokens);
  if (c.positions == PositionKind::Learned) matrix(n.embed_positions, 0, 0, w.embed_positions);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    LayerWeights& L = w.layers[size_t(i)];
    norm(n.attn_norm, i, i + 1, L.attn_norm, c.hidden_size);
    linear(n.q_proj, i, L.q);
    linear(n.k_proj, i, L.k);
    linear(n.v_proj, i, L.v);
    linear(n.qkv_proj, i, L.qkv);
    norm(n.q_norm, i, i + 1, L.q_norm, c.head_dim);
    norm(n.k_norm, i, i + 1, L.k_norm, c.head_dim);
    linear(n.o_proj, i, L.o);
    norm(n.post_attn_norm, i, i + 1, L.post_attn_norm, c.hidden_size);
    norm(n.ffn_norm, i, i + 1, L.ffn_norm, c.hidden_size);
    linear(n.gate_proj, i, L.gate);
    linear(n.up_proj, i, L.up);
    linear(n.down_proj, i, L.down);
    norm(n.post_ffn_norm, i, i + 1, L.post_ffn_norm, c.hidden_size);
  }
  norm(n.final_norm, 0, last, w.final_norm, c.hidden_size);
  if (!c.tie_embeddings) matrix(n.lm_head, 0, last, w.lm_head.weight);
}

// A writable copy of `t` in `dtype`, kept alive by the model's weights.
Tensor owned_copy(ModelWeights& w, const Tensor& t, DType dtype) {
  Buffer buffer(size_t(t.numel()) * dtype_size(dtype));
  Tensor out = Tensor::with_shape(buffer.data(), dtype, t.shape.data(), t.ndim);
  if (t.dtype == dtype) {
    std::memcpy(out.data, t.data, t.nbytes());
  } else {
    Buffer staging(size_t(t.numel()) * sizeof(float));
    convert_to_f32(t.data, t.dtype, staging.as<float>(), size_t(t.numel()));
    convert_from_f32(staging.as<float>(), out.data, dtype, size_t(t.numel()));
  }
  w.owned.push_back(std::move(buffer));
  return out;
}

// The ParameterRef list_parameters() makes for slot `s` with index `id`.
ParameterRef parameter_of(const Slot& s, uint32_t id, Device device) {
  ParameterRef p;
  p.name = s.name;
  p.id = id;
  p.block = s.block;
  if (s.matrix) {
    p.tensor = *s.matrix;
    p.decay = true;
  } else {
    p.tensor = Tensor(const_cast<float*>(*s.vector), DType::F32, {s.length});
    p.tensor.device = device;  // a matrix's Tensor carries its own
  }
  return p;
}

}  // namespace

void make_trainable(Decoder& model) {
  make_trainable(model, nullptr);
}

void make_trainable(Decoder& model, const std::function<bool(int64_t block)>& in_place) {
  ModelWeights& w = model.mutable_weights();
  if (w.trainable) return;
  const DType dtype = w.compute_dtype;
  visit(model, [&](const Slot& s) {
    if (in_place && in_place(s.block)) return;
    if (s.matrix) {
      // Learned positions stay f32: the embedding op reads any dtype, and they are small.
      DType want = s.matrix == &w.embed_positions ? DType::F32 : dtype;
      *s.matrix = owned_copy(w, *s.matrix, want);
    } else {
      Tensor view(const_cast<float*>(*s.vector), DType::F32, {s.length});
      *s.vector = owned_copy(w, view, DType::F32).f32();
    }
  });
  if (model.config().tie_embeddings) w.lm_head.weight = w.embed_tokens;
  w.trainable = true;
}

std::vector<ParameterRef> list_parameters(Decoder& model) {
  std::vector<ParameterRef> out;
  visit(model, [&](const Slot& s) {
    out.push_back(parameter_of(s, uint32_t(out.size()), model.device()));
  });
  return out;
}

void bind_block(Decoder& model, int64_t block,
                const std::function<void*(const ParameterRef&)>& where) {
  ModelWeights& w = model.mutable_weights();
  uint32_t id = 0;
  bool table = false;
  visit(model, [&](const Slot& s) {
    if (s.block == block) {
      void* data = where(parameter_of(s, id, model.device()));
      if (s.matrix)
        s.matrix->data = data;
      else
        *s.vector = static_cast<const float*>(data);
      table = table || s.matrix == &w.embed_tokens;
    }
    ++id;
  });
  // A tied head is the table itself once trainable (a converted copy of it before).
  if (table && model.config().tie_embeddings && w.lm_head.weight.dtype == w.embed_tokens.dtype)
    w.lm_head.weight.data = w.embed_tokens.data;
}

void refresh_block(Decoder& model, int64_t block, std::vector<ParameterRef>& params) {
  uint32_t id = 0;
  visit(model, [&](const Slot& s) {
    if (s.block == block)
      params[id].tensor.data = s.matrix ? s.matrix->data : const_cast<float*>(*s.vector);
    ++id;
  });
}

}  // namespace zoft
