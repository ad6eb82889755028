#include "model/inspect.h"

#include <set>

#include "io/gguf.h"
#include "io/safetensors.h"
#include "model/gguf_import.h"
#include "model/json_config.h"
#include "model/weights.h"

namespace zoft {

// The checkpoint part of the summary for a GGUF file: from its tensor infos, without
// dequantising anything (types as llama.cpp names them, e.g. "f32+q8_0+q4_k").
static void summarize_gguf(const std::string& path, ModelSummary& s) {
  auto gguf = GgufFile::open(path);
  LoadedConfig loaded = read_model_config_json(
      JsonConfig::from_value(gguf_model_config(*gguf), path + " (GGUF metadata)"));
  s.arch = loaded.arch->name;
  s.config = loaded.config;
  check_weights(std::make_shared<TensorStore>(path, gguf_tensor_shapes(*gguf)), *loaded.arch,
                loaded.config);
  std::set<std::string> types;
  for (const GgufTensorInfo& t : gguf->tensors()) {
    if (t.name == "rope_freqs.weight") continue;  // becomes config, not a parameter
    s.parameters += t.numel;
    s.checkpoint_bytes += t.nbytes;
    if (t.name.rfind("blk.0.", 0) == 0) s.layer_parameters += t.numel;
    std::string type = ggml_type_name(t.type);
    for (char& ch : type) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    types.insert(type);
  }
  for (const auto& t : types) s.checkpoint_dtypes += (s.checkpoint_dtypes.empty() ? "" : "+") + t;
}

// The checkpoint part of the summary for an HF directory, from the safetensors headers.
static void summarize_checkpoint(const std::string& model_dir, ModelSummary& s) {
  LoadedConfig loaded = read_model_config(model_dir);
  s.arch = loaded.arch->name;
  s.config = loaded.config;
  auto opened = std::make_shared<const Checkpoint>(Checkpoint::open(model_dir));
  check_weights(std::make_shared<TensorStore>(opened), *loaded.arch, loaded.config);
  const Checkpoint& checkpoint = *opened;
  s.checkpoint_bytes = checkpoint.total_bytes();
  std::set<std::string> dtypes;
  // Layer 0's tensors share the prefix of its attention norm, e.g. "model.layers.0.".
  auto strip = [](std::string name) {
    return name.rfind("model.", 0) == 0 ? name.substr(6) : name;
  };
  std::string layer0 = strip(layer_tensor_name(loaded.arch->tensors.attn_norm, 0));
  std::string layer0_prefix = layer0.substr(0, layer0.rfind('.') + 1);
  for (const std::string& name : checkpoint.names()) {
    const SafetensorsInfo& info = checkpoint.info(name);
    if (!info.has_dtype) continue;
    int64_t n = 1;
    for (int64_t d : info.shape) n *= d;
    s.parameters += n;
    dtypes.insert(dtype_name(info.dtype));
    if (strip(name).rfind(layer0_prefix, 0) == 0) s.layer_parameters += n;
  }
  for (const auto& d : dtypes) s.checkpoint_dtypes += (s.checkpoint_dtypes.empty() ? "" : "+") + d;
}

ModelSummary summarize_model(const std::string& model_dir) {
  ModelSummary s;
  s.path = model_dir;
  if (is_gguf_file(model_dir)) {
    summarize_gguf(model_dir, s);
  } else {
    summarize_checkpoint(model_dir, s);
  }
  const ModelConfig& c = s.config;
  s.embedding_parameters = c.vocab_size * c.hidden_size;
  if (c.positions == PositionKind::Learned)
    s.embedding_parameters += (c.max_positions + c.position_offset) * c.hidden_size;
  s.kv_bytes_per_token = uint64_t(2 * s.config.num_layers * s.config.kv_dim()) * sizeof(float);
  return s;
}

}  // namespace zoft
