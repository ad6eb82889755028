#include "model/gguf_import.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/gguf.h"
#include "model/arch.h"

namespace zoft {

namespace {

using json = nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Metadata

// GGUF keeps floats as f32: 1e-6 reads back as 9.99999997e-07. config.json should say 1e-06,
// so take the shortest decimal that rounds to the same f32.
double shortest_decimal(float value) {
  for (int digits = 6; digits <= 9; ++digits) {
    std::string text = fmt::format("{:.{}g}", value, digits);
    if (std::strtof(text.c_str(), nullptr) == value) return std::strtod(text.c_str(), nullptr);
  }
  return double(value);
}

// Typed access to "<arch>.<name>" keys.
struct ArchKeys {
  const GgufFile& file;
  std::string arch;

  std::string key(const char* name) const { return arch + "." + name; }
  int64_t get_int(const char* name) const { return int64_t(file.get_u64(key(name))); }
  int64_t get_int(const char* name, int64_t fallback) const {
    auto v = file.opt_u64(key(name));
    return v ? int64_t(*v) : fallback;
  }
  double get_float(const char* name, double fallback) const {
    auto v = file.opt_f32(key(name));
    return v ? shortest_decimal(*v) : fallback;
  }
};

json token_id(const GgufFile& file, const char* key) {
  auto id = file.opt_u32(key);
  return id ? json(*id) : json(nullptr);
}

// The keys every decoder's config.json has; the architecture adds its own.
json common_config(const ArchKeys& k) {
  const GgufFile& f = k.file;
  int64_t hidden = k.get_int("embedding_length");
  int64_t heads = k.get_int("attention.head_count");
  int64_t head_dim = k.get_int("attention.key_length", heads > 0 ? hidden / heads : 0);
  int64_t value_dim = k.get_int("attention.value_length", head_dim);
  if (value_dim != head_dim)
    fail("{}: attention.key_length {} differs from value_length {}: not supported", f.path(),
         head_dim, value_dim);
  json c;
  c["vocab_size"] = f.tensor("token_embd.weight").shape()[0];
  c["hidden_size"] = hidden;
  c["intermediate_size"] = k.get_int("feed_forward_length");
  // Checked here: gemma3_config makes one layer_types entry per block before the config reader
  // checks the other sizes.
  int64_t layers = k.get_int("block_count");
  if (layers <= 0 || layers > kMaxLayers)
    fail("{}: {} must be between 1 and {}, got {}", f.path(), k.key("block_count"), kMaxLayers,
         layers);
  c["num_hidden_layers"] = layers;
  c["num_attention_heads"] = heads;
  c["num_key_value_heads"] = k.get_int("attention.head_count_kv", heads);
  c["head_dim"] = head_dim;
  c["max_position_embeddings"] = k.get_int("context_length");
  c["rms_norm_eps"] = k.get_float("attention.layer_norm_rms_epsilon", 1e-6);
  c["tie_word_embeddings"] = f.find_tensor("output.weight") == nullptr;
  c["bos_token_id"] = token_id(f, "tokenizer.ggml.bos_token_id");
  c["eos_token_id"] = token_id(f, "tokenizer.ggml.eos_token_id");
  c["pad_token_id"] = token_id(f, "tokenizer.ggml.padding_token_id");
  c["attention_bias"] = f.find_tensor("blk.0.attn_q.bias") != nullptr;
  c["attention_dropout"] = 0.0;
  c["initializer_range"] = 0.02;
  c["use_cache"] = true;
  c["torch_dtype"] = "float32";
  return c;
}

// "linear" scaling as {"rope_type": "linear", "factor": f}; none -> null. llama.cpp's other
// types (yarn, longrope) have no counterpart in zoft's rope.
json rope_scaling(const ArchKeys& k) {
  auto type = k.file.opt_string(k.key("rope.scaling.type"));
  if (!type || *type == "none") return nullptr;
  double factor = k.get_float("rope.scaling.factor", 1.0);
  if (*type == "linear")
    return factor == 1.0 ? json(nullptr) : json{{"rope_type", "linear"}, {"factor", factor}};
  fail("{}: rope scaling '{}' is not supported (linear, or llama3 via rope_freqs.weight)",
       k.file.path(), *type);
}

// ---------------------------------------------------------------------------------------------
// Llama 3 rope from rope_freqs.weight

// HF's llama3 rule divides each inverse frequency by 1 (short wavelengths), by `factor` (long
// ones), or by a blend in between. llama.cpp keeps only those divisors; every Llama 3.x release
// has low/high frequency factors 1 and 4, so assume them and solve for the original context.
json llama3_rope(const GgufFile& f, double theta, int64_t head_dim) {
  OwnedTensor t = f.to_f32("rope_freqs.weight");
  const float* div = t.view.f32();
  int64_t n = t.view.numel();
  if (n != head_dim / 2)
    fail("{}: rope_freqs.weight has {} values, expected head_dim / 2 = {}", f.path(), n,
         head_dim / 2);
  const double pi = 3.14159265358979323846, low = 1.0, high = 4.0;
  auto wavelen = [&](int64_t i) {
    return 2 * pi * std::pow(theta, double(2 * i) / double(head_dim));
  };
  double factor = 1.0;
  for (int64_t i = 0; i < n; ++i) factor = std::max(factor, double(div[i]));
  if (factor == 1.0) return nullptr;
  // A blended divisor d gives smooth = (1/d - 1/f) / (1 - 1/f) = (old/wavelen - low)/(high-low).
  double sum = 0, count = 0, max_unscaled = 0, min_scaled = INFINITY;
  for (int64_t i = 0; i < n; ++i) {
    double d = div[i];
    if (std::fabs(d - 1) < 1e-6)
      max_unscaled = std::max(max_unscaled, wavelen(i));
    else if (std::fabs(d - factor) < 1e-6 * factor)
      min_scaled = std::min(min_scaled, wavelen(i));
    else {
      double smooth = (1 / d - 1 / factor) / (1 - 1 / factor);
      sum += wavelen(i) * (low + smooth * (high - low)), ++count;
    }
  }
  // Without a blended value any context between the two bands reproduces the divisors.
  double old =
      count > 0 ? sum / count : std::max(high * max_unscaled * 1.01, low * min_scaled * 0.99);
  int64_t old_context = std::llround(old);
  for (int64_t i = 0; i < n; ++i) {
    double w = wavelen(i), smooth = (double(old_context) / w - low) / (high - low);
    double want = w < old_context / high  ? 1.0
                  : w > old_context / low ? factor
                                          : 1 / ((1 - smooth) / factor + smooth);
    if (std::fabs(want - div[i]) > 1e-4 * want)
      fail(
          "{}: rope_freqs.weight does not follow Llama 3's rope scaling (value {} is {}, "
          "expected {}): not supported",
          f.path(), i, div[i], want);
  }
  return {{"rope_type", "llama3"},
          {"factor", shortest_decimal(float(factor))},
          {"low_freq_factor", low},
          {"high_freq_factor", high},
          {"original_max_position_embeddings", old_context}};
}

// ---------------------------------------------------------------------------------------------
// Per-architecture config.json

json llama_config(const ArchKeys& k) {
  json c = common_config(k);
  int64_t head_dim = c["head_dim"];
  int64_t rotary = k.get_int("rope.dimension_count", head_dim);
  if (rotary != head_dim)
    fail("{}: rope over {} of {} head dimensions is not supported for llama", k.file.path(), rotary,
         head_dim);
  c["architectures"] = {"LlamaForCausalLM"};
  c["model_type"] = "llama";
  c["hidden_act"] = "silu";
  c["mlp_bias"] = false;
  c["pretraining_tp"] = 1;
  c["rope_theta"] = k.get_float("rope.freq_base", 10000.0);
  c["rope_scaling"] = k.file.find_tensor("rope_freqs.weight")
                          ? llama3_rope(k.file, c["rope_theta"].get<double>(), head_dim)
                          : rope_scaling(k);
  return c;
}

json gemma3_config(const ArchKeys& k) {
  json c = common_config(k);
  int64_t layers = c["num_hidden_layers"], window = k.get_int("attention.sliding_window", 0);
  c["architectures"] = {"Gemma3ForCausalLM"};
  c["model_type"] = "gemma3_text";
  c["hidden_activation"] = "gelu_pytorch_tanh";
  c["rope_theta"] = k.get_float("rope.freq_base", 1e6);
  c["rope_local_base_freq"] = 10000.0;  // llama.cpp hard-codes it for the sliding layers
  c["rope_scaling"] = rope_scaling(k);
  // llama.cpp: the 27B model (62 layers) scales queries by hidden / heads, the others by head_dim.
  c["query_pre_attn_scalar"] =
      layers == 62 ? c["hidden_size"].get<int64_t>() / c["num_attention_heads"].get<int64_t>()
                   : c["head_dim"].get<int64_t>();
  double softcap = k.get_float("final_logit_softcapping", 0.0);
  c["final_logit_softcapping"] = softcap > 0 ? json(softcap) : json(nullptr);
  c["attn_logit_softcapping"] = nullptr;
  c["use_bidirectional_attention"] = false;
  // llama.cpp: with a window, every 6th layer attends globally, the others locally.
  json types = json::array();
  for (int64_t i = 0; i < layers; ++i)
    types.push_back(window > 0 && (i + 1) % 6 != 0 ? "sliding_attention" : "full_attention");
  c["layer_types"] = types;
  c["sliding_window"] = window > 0 ? json(window) : json(nullptr);
  if (window > 0) c["sliding_window_pattern"] = 6;  // read by transformers before layer_types
  return c;
}

// ---------------------------------------------------------------------------------------------
// Tensor names: GGUF -> HF, "{}" = layer index; ".weight" / ".bias" are carried over.

struct TensorName {
  const char* gguf;
  const char* hf;
};

const std::vector<TensorName> kLlamaNames = {
    {"token_embd", "model.embed_tokens"},
    {"output_norm", "model.norm"},
    {"output", "lm_head"},
    {"blk.{}.attn_norm", "model.layers.{}.input_layernorm"},
    {"blk.{}.attn_q", "model.layers.{}.self_attn.q_proj"},
    {"blk.{}.attn_k", "model.layers.{}.self_attn.k_proj"},
    {"blk.{}.attn_v", "model.layers.{}.self_attn.v_proj"},
    {"blk.{}.attn_output", "model.layers.{}.self_attn.o_proj"},
    {"blk.{}.ffn_norm", "model.layers.{}.post_attention_layernorm"},
    {"blk.{}.ffn_gate", "model.layers.{}.mlp.gate_proj"},
    {"blk.{}.ffn_up", "model.layers.{}.mlp.up_proj"},
    {"blk.{}.ffn_down", "model.layers.{}.mlp.down_proj"},
};

const std::vector<TensorName> kGemma3Names = {
    {"token_embd", "model.embed_tokens"},
    {"output_norm", "model.norm"},
    {"output", "lm_head"},
    {"blk.{}.attn_norm", "model.layers.{}.input_layernorm"},
    {"blk.{}.attn_q", "model.layers.{}.self_attn.q_proj"},
    {"blk.{}.attn_k", "model.layers.{}.self_attn.k_proj"},
    {"blk.{}.attn_v", "model.layers.{}.self_attn.v_proj"},
    {"blk.{}.attn_output", "model.layers.{}.self_attn.o_proj"},
    {"blk.{}.attn_q_norm", "model.layers.{}.self_attn.q_norm"},
    {"blk.{}.attn_k_norm", "model.layers.{}.self_attn.k_norm"},
    {"blk.{}.post_attention_norm", "model.layers.{}.post_attention_layernorm"},
    {"blk.{}.ffn_norm", "model.layers.{}.pre_feedforward_layernorm"},
    {"blk.{}.ffn_gate", "model.layers.{}.mlp.gate_proj"},
    {"blk.{}.ffn_up", "model.layers.{}.mlp.up_proj"},
    {"blk.{}.ffn_down", "model.layers.{}.mlp.down_proj"},
    {"blk.{}.post_ffw_norm", "model.layers.{}.post_feedforward_layernorm"},
};

struct GgufArch {
  const char* name;  // general.architecture
  const std::vector<TensorName>* names;
  bool qk_rows_interleaved;  // llama.cpp permuted q/k rows for its adjacent-pair rope
  bool norm_plus_one;        // llama.cpp stored (1 + w) norms as 1 + w
  json (*config)(const ArchKeys&);
  std::vector<const char*> consumed;  // tensors turned into config, not weights
};

const GgufArch kGgufArchs[] = {
    {"llama", &kLlamaNames, true, false, llama_config, {"rope_freqs.weight"}},
    {"gemma3", &kGemma3Names, false, true, gemma3_config, {}},
};

const GgufArch& find_gguf_arch(const GgufFile& f) {
  std::string arch = f.get_string("general.architecture");
  for (const GgufArch& a : kGgufArchs)
    if (arch == a.name) return a;
  fail("{}: GGUF architecture '{}' cannot be imported: supported are {}", f.path(),
       gguf_printable(arch), supported_gguf_architectures());
}

// "blk.12.attn_q.weight" -> HF name, or "" when the table has no such tensor.
std::string hf_name(const GgufArch& arch, const std::string& gguf_name) {
  size_t dot = gguf_name.rfind('.');
  if (dot == std::string::npos) return "";
  std::string base = gguf_name.substr(0, dot), suffix = gguf_name.substr(dot);
  if (suffix != ".weight" && suffix != ".bias") return "";
  int64_t layer = 0;
  if (base.rfind("blk.", 0) == 0) {
    size_t end = base.find('.', 4);
    std::string digits = base.substr(4, end == std::string::npos ? end : end - 4);
    if (digits.empty() || digits.size() > 6 ||
        digits.find_first_not_of("0123456789") != std::string::npos)
      return "";
    layer = std::stoll(digits);
    base = "blk.{}" + (end == std::string::npos ? std::string() : base.substr(end));
  }
  for (const TensorName& n : *arch.names)
    if (base == n.gguf) return layer_tensor_name(n.hf, layer) + suffix;
  return "";
}

// ---------------------------------------------------------------------------------------------
// Tensor transforms

// Undoes llama.cpp's permute(): within each head, GGUF row 2i + j is HF row i + j * head_dim/2.
void deinterleave_rows(OwnedTensor& t, int64_t heads, const std::string& where) {
  int64_t rows = t.view.shape[0], cols = t.view.numel() / rows;
  if (heads <= 0 || rows % heads != 0 || (rows / heads) % 2 != 0)
    fail("{}: {} rows cannot be split into {} heads of even size", where, rows, heads);
  int64_t head_dim = rows / heads, half = head_dim / 2;
  Buffer out(t.buffer.size());
  const float* src = t.view.f32();
  float* dst = out.as<float>();
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j)
        std::memcpy(dst + (h * head_dim + j * half + i) * cols,
                    src + (h * head_dim + 2 * i + j) * cols, size_t(cols) * sizeof(float));
  t.view.data = out.data();
  t.buffer = std::move(out);
}

void subtract_one(OwnedTensor& t) {
  float* v = t.view.f32();
  for (int64_t i = 0, n = t.view.numel(); i < n; ++i) v[i] -= 1.0f;
}

bool ends_with(const std::string& s, const char* suffix) {
  size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

}  // namespace

std::string supported_gguf_architectures() {
  std::string out;
  for (const GgufArch& a : kGgufArchs) out += (out.empty() ? "" : ", ") + std::string(a.name);
  return out;
}

nlohmann::json gguf_model_config(const GgufFile& f) {
  const GgufArch& arch = find_gguf_arch(f);
  return arch.config(ArchKeys{f, arch.name});
}

// The HF name of a weight, "" for a tensor the import turns into config; throws for others.
std::string imported_name(const GgufArch& arch, const GgufFile& f, const GgufTensorInfo& info) {
  if (std::find(arch.consumed.begin(), arch.consumed.end(), info.name) != arch.consumed.end())
    return "";
  std::string name = hf_name(arch, info.name);
  if (name.empty())
    fail("{}: tensor '{}' has no Hugging Face counterpart in zoft's {} table", f.path(),
         gguf_printable(info.name), arch.name);
  return name;
}

ImportedModel import_gguf(const GgufFile& f) {
  const GgufArch& arch = find_gguf_arch(f);
  ImportedModel model;
  model.config = arch.config(ArchKeys{f, arch.name});
  int64_t heads = model.config["num_attention_heads"],
          kv_heads = model.config["num_key_value_heads"];
  for (const GgufTensorInfo& info : f.tensors()) {
    std::string name = imported_name(arch, f, info);
    if (name.empty()) continue;
    OwnedTensor t = f.to_f32(info.name);
    std::string where = f.path() + ": tensor '" + info.name + "'";
    if (arch.qk_rows_interleaved && info.name.find(".attn_q.") != std::string::npos)
      deinterleave_rows(t, heads, where);
    if (arch.qk_rows_interleaved && info.name.find(".attn_k.") != std::string::npos)
      deinterleave_rows(t, kv_heads, where);
    if (arch.norm_plus_one && ends_with(info.name, "norm.weight")) subtract_one(t);
    model.tensors.push_back({std::move(name), std::move(t)});
  }
  return model;
}

std::vector<NamedOwnedTensor> gguf_tensor_shapes(const GgufFile& f) {
  const GgufArch& arch = find_gguf_arch(f);
  std::vector<NamedOwnedTensor> out;
  for (const GgufTensorInfo& info : f.tensors()) {
    std::string name = imported_name(arch, f, info);
    if (name.empty()) continue;
    std::vector<int64_t> shape = info.shape();
    OwnedTensor t;
    t.view = Tensor::with_shape(nullptr, DType::F32, shape.data(), info.n_dims);
    out.push_back({std::move(name), std::move(t)});
  }
  return out;
}

bool is_gguf_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::memcmp(magic, "GGUF", 4) == 0;
}

}  // namespace zoft
