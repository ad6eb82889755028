#include "model/model_source.h"

#include "io/gguf.h"
#include "io/safetensors.h"
#include "model/gguf_import.h"
#include "model/json_config.h"

namespace zoft {

ModelSource open_model_source(const std::string& path) {
  ModelSource source;
  if (is_gguf_file(path)) {
    std::unique_ptr<GgufFile> gguf = GgufFile::open(path);
    ImportedModel imported = import_gguf(*gguf);
    // Errors in the derived config name the file it came from.
    JsonConfig json = JsonConfig::from_value(std::move(imported.config), path + " (GGUF metadata)");
    source.loaded = read_model_config_json(json);
    source.tensors = std::make_shared<TensorStore>(path, std::move(imported.tensors));
    return source;
  }
  source.loaded = read_model_config(path);
  source.tensors =
      std::make_shared<TensorStore>(std::make_shared<const Checkpoint>(Checkpoint::open(path)));
  return source;
}

}  // namespace zoft
