#include "model/inspect.h"

#include <set>

#include "io/safetensors.h"

namespace zoft {

ModelSummary summarize_model(const std::string& model_dir) {
  ModelSummary s;
  LoadedConfig loaded = read_model_config(model_dir);
  s.path = model_dir;
  s.arch = loaded.arch->name;
  s.config = loaded.config;
  Checkpoint checkpoint = Checkpoint::open(model_dir);
  s.checkpoint_bytes = checkpoint.total_bytes();
  std::set<std::string> dtypes;
  // Layer 0's tensors share the prefix of its attention norm, e.g. "model.layers.0.".
  auto strip = [](std::string name) { return name.rfind("model.", 0) == 0 ? name.substr(6) : name; };
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
  const ModelConfig& c = s.config;
  s.embedding_parameters = c.vocab_size * c.hidden_size;
  if (c.positions == PositionKind::Learned)
    s.embedding_parameters += (c.max_positions + c.position_offset) * c.hidden_size;
  for (const auto& d : dtypes) s.checkpoint_dtypes += (s.checkpoint_dtypes.empty() ? "" : "+") + d;
  s.kv_bytes_per_token = uint64_t(2 * s.config.num_layers * s.config.kv_dim()) * sizeof(float);
  return s;
}

}  // namespace zoft
