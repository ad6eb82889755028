#include "model/weights.h"

#include <set>

#include "core/error.h"

namespace zoft {

namespace {

// Resolves HF names across the two prefixes checkpoints use ("model.x" from *ForCausalLM,
// "x" from the bare *Model), so both kinds of directory load.
class TensorSource {
 public:
  // make: null to read tensors from the store, else every tensor is made by it (and the store
  // is empty: it only names the model in messages).
  // check_only: views are shape-checked but never converted (load_weights's checks without
  // its copies: check_weights).
  TensorSource(const TensorStore& store, ModelWeights& weights, const TensorFactory* make,
               bool check_only)
      : store_(store), weights_(weights), make_(make), check_only_(check_only) {}

  std::string resolve(const std::string& name) const {
    if (make_) return name;
    if (store_.has(name)) return name;
    if (name.rfind("model.", 0) == 0 && store_.has(name.substr(6))) return name.substr(6);
    if (store_.has("model." + name)) return "model." + name;
    return "";
  }
  bool has(const std::string& name) const { return !resolve(name).empty(); }

  // The raw view, shape-checked against what config.json implies.
  Tensor view(const std::string& name, std::initializer_list<int64_t> expected) {
    std::string found = resolve(name);
    if (found.empty())
      fail("{}: tensor '{}' not found in checkpoint (needed by this architecture)", store_.origin(),
           name);
    Tensor t = make_ ? made(found, expected) : store_.view(found);
    bool same = t.ndim == int(expected.size());
    int i = 0;
    for (int64_t d : expected) same = same && t.shape[i++] == d;
    if (!same) {
      Tensor want(nullptr, t.dtype, expected);
      fail("{}: tensor '{}' has shape {} but config.json implies {}", store_.origin(), found,
           t.shape_string(), want.shape_string());
    }
    if (used_.insert(found).second) weights_.parameter_count += t.numel();
    dtypes_.insert(dtype_name(t.dtype));
    return t;
  }

  // The view itself if it already has dtype `want`, else a converted copy owned by weights_.
  Tensor as_dtype(const Tensor& t, DType want) {
    if (t.dtype == want) return t;
    if (check_only_) return Tensor::with_shape(nullptr, want, t.shape.data(), t.ndim);
    Buffer buffer(size_t(t.numel()) * dtype_size(want));
    Tensor out = Tensor::with_shape(buffer.data(), want, t.shape.data(), t.ndim);
    if (want == DType::F32) {
      convert_to_f32(t.data, t.dtype, out.f32(), size_t(t.numel()));
    } else {
      Buffer staging(size_t(t.numel()) * 4);
      convert_to_f32(t.data, t.dtype, staging.as<float>(), size_t(t.numel()));
      convert_from_f32(staging.as<float>(), out.data, want, size_t(t.numel()));
    }
    weights_.owned.push_back(std::move(buffer));
    return out;
  }

  const float* vector_f32(const std::string& name, int64_t size) {
    return as_dtype(view(name, {size}), DType::F32).f32();
  }

  // A tensor from the factory, owned by weights_ (moving a Buffer keeps its data in place).
  Tensor made(const std::string& name, std::initializer_list<int64_t> shape) {
    OwnedTensor t = (*make_)(name, std::vector<int64_t>(shape));
    weights_.owned.push_back(std::move(t.buffer));
    return t.view;
  }

  std::string dtypes() const {
    std::string out;
    for (const auto& d : dtypes_) out += (out.empty() ? "" : "+") + d;
    return out;
  }

 private:
  const TensorStore& store_;
  ModelWeights& weights_;
  const TensorFactory* make_;
  bool check_only_;
  std::set<std::string> used_;
  std::set<std::string> dtypes_;
};

NormWeights load_norm(TensorSource& src, const ModelConfig& c, const char* pattern, int64_t layer,
                      int64_t dim) {
  NormWeights norm;
  if (!pattern) return norm;
  std::string base = layer_tensor_name(pattern, layer);
  norm.weight = src.vector_f32(base + ".weight", dim);
  if (c.norm == NormKind::LayerNorm) norm.bias = src.vector_f32(base + ".bias", dim);
  return norm;
}

LinearWeights load_linear(TensorSource& src, const ModelWeights& w, const char* pattern,
                          int64_t layer, int64_t out, int64_t in, bool bias) {
  LinearWeights lin;
  std::string base = layer_tensor_name(pattern, layer);
  lin.out_features = out;
  lin.in_features = in;
  Tensor raw = w.weights_are_kn ? src.view(base + ".weight", {in, out})
                                : src.view(base + ".weight", {out, in});
  lin.weight = src.as_dtype(raw, w.compute_dtype);
  if (bias) lin.bias = src.vector_f32(base + ".bias", out);
  return lin;
}

LayerWeights load_layer(TensorSource& src, const ArchTable& arch, const ModelConfig& c,
                        const ModelWeights& w, int64_t i) {
  const ArchTensorNames& n = arch.tensors;
  int64_t H = c.hidden_size, I = c.intermediate_size;
  LayerWeights L;
  L.attn_norm = load_norm(src, c, n.attn_norm, i, H);
  if (n.q_proj) {
    L.q = load_linear(src, w, n.q_proj, i, c.q_dim(), H, c.attention_bias);
    L.k = load_linear(src, w, n.k_proj, i, c.kv_dim(), H, c.attention_bias);
    L.v = load_linear(src, w, n.v_proj, i, c.kv_dim(), H, c.attention_bias);
  } else {
    L.qkv = load_linear(src, w, n.qkv_proj, i, c.q_dim() + 2 * c.kv_dim(), H, c.attention_bias);
  }
  L.o = load_linear(src, w, n.o_proj, i, H, c.q_dim(), c.attention_out_bias);
  if (c.qk_norm) {
    L.q_norm = load_norm(src, c, n.q_norm, i, c.head_dim);
    L.k_norm = load_norm(src, c, n.k_norm, i, c.head_dim);
  }
  if (c.sandwich_norm) {
    L.post_attn_norm = load_norm(src, c, n.post_attn_norm, i, H);
    L.post_ffn_norm = load_norm(src, c, n.post_ffn_norm, i, H);
  }
  L.ffn_norm = load_norm(src, c, n.ffn_norm, i, H);
  if (c.gated_mlp) L.gate = load_linear(src, w, n.gate_proj, i, I, H, c.mlp_bias);
  L.up = load_linear(src, w, n.up_proj, i, I, H, c.mlp_bias);
  L.down = load_linear(src, w, n.down_proj, i, H, I, c.mlp_bias);
  return L;
}

// The parameters config.json implies at the least (the embedding and every layer's matrices),
// in double: a hostile config's sizes would overflow int64 in the product.
double implied_parameters(const ModelConfig& c) {
  double H = double(c.hidden_size), I = double(c.intermediate_size);
  double attention = H * double(c.q_dim() + 2 * c.kv_dim()) + double(c.q_dim()) * H;
  double mlp = (c.gated_mlp ? 3 : 2) * H * I;
  return double(c.vocab_size) * H + double(c.num_layers) * (attention + mlp);
}

// A config whose sizes the checkpoint cannot hold (even at 2 bytes a parameter) is refused
// before a single layer is read: its first missing tensor could be thousands of layers in.
void check_checkpoint_size(const TensorStore& store, const ModelConfig& c) {
  double implied = implied_parameters(c);
  if (implied * 2 > double(store.total_bytes()))
    fail(
        "{}: config.json implies at least {:.0f} parameters ({} layers, hidden {}), more than the "
        "{} bytes of the checkpoint hold: the config does not belong to these weights",
        store.origin(), implied, c.num_layers, c.hidden_size, store.total_bytes());
}

// load_weights, make_weights and check_weights: every tensor by role, from the store or the
// factory.
ModelWeights build_weights(std::shared_ptr<const TensorStore> store, const TensorFactory* make,
                           const ArchTable& arch, const ModelConfig& c, DType compute_dtype,
                           bool check_only = false) {
  if (compute_dtype == DType::F16)
    fail("compute dtype f16 is not supported on the CPU: use f32 or bf16");
  ModelWeights w;
  w.compute_dtype = compute_dtype;
  w.weights_are_kn = arch.weights_are_kn;
  w.source = std::move(store);
  w.checkpoint_bytes = w.source->total_bytes();
  if (!make) check_checkpoint_size(*w.source, c);
  TensorSource src(*w.source, w, make, check_only);
  const ArchTensorNames& n = arch.tensors;

  w.embed_tokens = src.view(std::string(n.embed_tokens) + ".weight", {c.vocab_size, c.hidden_size});
  if (c.positions == PositionKind::Learned) {
    Tensor pos = src.view(std::string(n.embed_positions) + ".weight",
                          {c.max_positions + c.position_offset, c.hidden_size});
    w.embed_positions = src.as_dtype(pos, DType::F32);
  }
  for (int64_t i = 0; i < c.num_layers; ++i) w.layers.push_back(load_layer(src, arch, c, w, i));
  w.final_norm = load_norm(src, c, n.final_norm, 0, c.hidden_size);

  std::string head = std::string(n.lm_head) + ".weight";
  bool use_embedding = c.tie_embeddings || !src.has(head);
  if (use_embedding && !c.tie_embeddings)
    fail("{}: tensor '{}' not found in checkpoint and tie_word_embeddings is false",
         w.source->origin(), head);
  w.lm_head.out_features = c.vocab_size;
  w.lm_head.in_features = c.hidden_size;
  Tensor head_raw = use_embedding ? w.embed_tokens : src.view(head, {c.vocab_size, c.hidden_size});
  w.lm_head.weight = src.as_dtype(head_raw, compute_dtype);
  w.checkpoint_dtypes = src.dtypes();
  // lm_head is [vocab, hidden] in every layout, including GPT-2's (it is an nn.Linear).
  return w;
}

}  // namespace

ModelWeights load_weights(std::shared_ptr<const TensorStore> store, const ArchTable& arch,
                          const ModelConfig& c, DType compute_dtype) {
  return build_weights(std::move(store), nullptr, arch, c, compute_dtype);
}

void check_weights(std::shared_ptr<const TensorStore> store, const ArchTable& arch,
                   const ModelConfig& c) {
  build_weights(std::move(store), nullptr, arch, c, DType::F32, /*check_only=*/true);
}

ModelWeights make_weights(const TensorFactory& make, const std::string& origin,
                          const ArchTable& arch, const ModelConfig& c, DType compute_dtype) {
  auto empty = std::make_shared<TensorStore>(origin, std::vector<NamedOwnedTensor>{});
  return build_weights(std::move(empty), &make, arch, c, compute_dtype);
}

}  // namespace zoft
