#include "model/lora_io.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <set>

#include "core/error.h"
#include "io/json_file.h"
#include "io/mapped_file.h"
#include "io/safetensors.h"
#include "model/decoder.h"
#include "model/tensor_store.h"
#include "model/weights.h"

namespace zoft {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* kPeftPrefix = "base_model.model.";

// PEFT LoraConfig fields whose non-default value changes the adapter's math or its tensors in
// ways zoft does not implement: each is refused by name rather than silently ignored.
void refuse_unsupported(const json& j, const std::string& origin) {
  for (const char* key : {"use_dora", "lora_bias", "use_qalora", "use_bdlora"})
    if (j.contains(key) && j[key].is_boolean() && j[key].get<bool>())
      fail("{}: {} = true is not supported (plain LoRA only)", origin, key);
  for (const char* key : {"rank_pattern", "alpha_pattern"})
    if (j.contains(key) && !j[key].is_null() && !j[key].empty())
      fail("{}: {} (per-module ranks / alphas) is not supported: one r and lora_alpha for all",
           origin, key);
  for (const char* key : {"modules_to_save", "layers_to_transform", "layers_pattern",
                          "target_parameters", "trainable_token_indices", "layer_replication",
                          "exclude_modules", "alora_invocation_tokens"})
    if (j.contains(key) && !j[key].is_null() && !(j[key].is_array() && j[key].empty()))
      fail("{}: {} is not supported (adapters on the decoder blocks' linear layers only)", origin,
           key);
}

double number_field(const json& j, const char* key, double fallback, const std::string& origin) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_number()) fail("{}: {} must be a number", origin, key);
  return j[key].get<double>();
}

// "base_model.model.<module>.lora_A.weight" -> <module> and which of A / B; false otherwise.
bool parse_peft_name(const std::string& name, std::string& module, bool& is_b) {
  const std::string a = ".lora_A.weight", b = ".lora_B.weight";
  const std::string prefix = kPeftPrefix;
  if (name.compare(0, prefix.size(), prefix) != 0) return false;
  for (const std::string* suffix : {&a, &b}) {
    if (name.size() > prefix.size() + suffix->size() &&
        name.compare(name.size() - suffix->size(), suffix->size(), *suffix) == 0) {
      module = name.substr(prefix.size(), name.size() - prefix.size() - suffix->size());
      is_b = suffix == &b;
      return true;
    }
  }
  return false;
}

// Copies a checked adapter tensor into the module's f32 storage.
void load_adapter_tensor(const SafetensorsFile& file, const SafetensorsInfo& info, OwnedTensor& dst,
                         const std::string& arch_name) {
  if (!info.has_dtype)
    fail("{}: tensor '{}' has dtype {}: expected F32, BF16 or F16", file.path(), info.name,
         info.dtype_name);
  Tensor src = file.view(info);
  std::vector<int64_t> want(dst.view.shape.begin(), dst.view.shape.begin() + dst.view.ndim);
  if (info.shape != want)
    fail(
        "{}: tensor '{}' has shape {} but this {} model needs {}: the adapter was made for "
        "another base model",
        file.path(), info.name, src.shape_string(), arch_name, dst.view.shape_string());
  convert_to_f32(src.data, src.dtype, dst.view.f32(), size_t(src.numel()));
}

}  // namespace

LoraSettings read_peft_config(const std::string& dir) {
  const std::string path = (fs::path(dir) / "adapter_config.json").string();
  if (!fs::is_directory(dir)) fail("{}: no such adapter directory", dir);
  if (!fs::is_regular_file(path))
    fail("{}: not a PEFT adapter directory (no adapter_config.json)", dir);
  json j = read_json_file(path);
  if (!j.is_object()) fail("{}: expected a JSON object", path);
  std::string type = j.value("peft_type", std::string());
  if (type != "LORA")
    fail("{}: PEFT type '{}' is not supported: zoft reads LORA adapters only", path, type);
  refuse_unsupported(j, path);
  LoraSettings s;
  if (!j.contains("r") || !j["r"].is_number_integer()) fail("{}: r must be an integer", path);
  s.r = j["r"].get<int64_t>();
  s.alpha = number_field(j, "lora_alpha", 8.0, path);
  s.dropout = number_field(j, "lora_dropout", 0.0, path);
  s.rslora = j.value("use_rslora", false);
  s.bias = j.value("bias", std::string("none"));
  const json& targets = j.contains("target_modules") ? j["target_modules"] : json();
  if (targets.is_string()) {
    s.target_regex = targets.get<std::string>();
  } else if (targets.is_array()) {
    for (const json& t : targets) {
      if (!t.is_string()) fail("{}: target_modules must hold module names", path);
      s.target_modules.push_back(t.get<std::string>());
    }
  } else {
    fail("{}: target_modules must be a list of module names or a regular expression", path);
  }
  s.validate(path);
  return s;
}

LoraAdapters read_peft_adapter(const std::string& dir, const ArchTable& arch,
                               const ModelConfig& config) {
  LoraSettings settings = read_peft_config(dir);
  LoraAdapters adapters = LoraAdapters::create(arch, config, settings,
                                               (fs::path(dir) / "adapter_config.json").string());
  const fs::path file_path = fs::path(dir) / "adapter_model.safetensors";
  if (!fs::is_regular_file(file_path))
    fail(
        "{}: no adapter_model.safetensors (zoft reads safetensors adapters: save with "
        "safe_serialization=True)",
        dir);
  SafetensorsFile file = SafetensorsFile::open(file_path.string());
  std::set<std::string> loaded;
  std::vector<LinearSlot> slots = linear_slots(arch, config);
  for (const SafetensorsInfo& info : file.tensors()) {
    std::string module;
    bool is_b = false;
    if (!parse_peft_name(info.name, module, is_b))
      fail(
          "{}: tensor '{}' is not a LoRA A or B weight ({}<module>.lora_A.weight): only plain "
          "LoRA adapters are supported",
          file.path(), info.name, kPeftPrefix);
    LoraModule* m = adapters.find(module);
    if (!m) {
      bool is_layer = false;
      for (const LinearSlot& s : slots) is_layer = is_layer || s.name == module;
      if (is_layer)
        fail("{}: tensor '{}' is for {}, which target_modules does not select", file.path(),
             info.name, module);
      fail(
          "{}: tensor '{}' names no linear layer of this {} model: the adapter was made for "
          "another base model",
          file.path(), info.name, arch.name);
    }
    load_adapter_tensor(file, info, is_b ? m->b : m->a, arch.name);
    loaded.insert(info.name);
  }
  for (const LoraModule& m : adapters.modules())
    for (bool b : {false, true})
      if (!loaded.count(peft_tensor_name(m, b)))
        fail("{}: no tensor '{}' (target_modules selects {})", file.path(), peft_tensor_name(m, b),
             m.name);
  return adapters;
}

std::unique_ptr<LoraAdapters> attach_peft_adapter(Decoder& model, const std::string& dir) {
  auto adapters =
      std::make_unique<LoraAdapters>(read_peft_adapter(dir, model.arch(), model.config()));
  attach_lora(model, *adapters);
  return adapters;
}

std::string peft_config_text(const LoraAdapters& adapters, const ArchTable& arch,
                             const std::string& base_model) {
  const LoraSettings& s = adapters.settings();
  json alpha = s.alpha == std::floor(s.alpha) ? json(int64_t(s.alpha)) : json(s.alpha);
  json targets = s.target_regex.empty() ? json(s.target_modules) : json(s.target_regex);
  json config = {{"peft_type", "LORA"},
                 {"task_type", "CAUSAL_LM"},
                 {"base_model_name_or_path", base_model},
                 {"r", s.r},
                 {"lora_alpha", alpha},
                 {"lora_dropout", s.dropout},
                 {"use_rslora", s.rslora},
                 {"target_modules", targets},
                 {"bias", s.bias},
                 {"fan_in_fan_out", arch.weights_are_kn},
                 {"inference_mode", true},
                 {"init_lora_weights", true},
                 {"modules_to_save", nullptr},
                 {"layers_to_transform", nullptr},
                 {"layers_pattern", nullptr},
                 {"rank_pattern", json::object()},
                 {"alpha_pattern", json::object()},
                 {"use_dora", false},
                 {"revision", nullptr}};
  return config.dump(2) + "\n";
}

void write_peft_adapter(const std::string& dir, const LoraAdapters& adapters, const ArchTable& arch,
                        const std::string& base_model) {
  fs::create_directories(dir);
  std::vector<NamedTensor> tensors;
  for (const ParameterRef& p : lora_parameters(adapters)) tensors.push_back({p.name, p.tensor});
  write_safetensors((fs::path(dir) / "adapter_model.safetensors").string(), tensors,
                    {{"format", "pt"}});
  write_file_atomic((fs::path(dir) / "adapter_config.json").string(),
                    peft_config_text(adapters, arch, base_model));
}

size_t write_merged_checkpoint(const std::string& base_dir, const std::string& adapter_dir,
                               const std::string& out_dir) {
  if (!fs::is_directory(base_dir) || !fs::is_regular_file(fs::path(base_dir) / "config.json"))
    fail(
        "{}: not a Hugging Face model directory (zoft merge needs config.json + safetensors; "
        "`zoft convert` a GGUF file first)",
        base_dir);
  if (fs::exists(out_dir) &&
      (fs::equivalent(out_dir, base_dir) || fs::equivalent(out_dir, adapter_dir)))
    fail("{}: the output directory is an input: choose another OUT", out_dir);
  LoadedConfig loaded = read_model_config(base_dir);
  auto store =
      std::make_shared<TensorStore>(std::make_shared<const Checkpoint>(Checkpoint::open(base_dir)));
  check_weights(store, *loaded.arch, loaded.config);
  LoraAdapters adapters = read_peft_adapter(adapter_dir, *loaded.arch, loaded.config);
  std::map<std::string, const LoraModule*> by_weight;
  for (const LoraModule& m : adapters.modules()) by_weight[m.name + ".weight"] = &m;

  std::vector<Buffer> merged;
  std::vector<NamedTensor> tensors;
  for (const std::string& name : store->names()) {
    Tensor t = store->view(name);
    auto it = by_weight.find(name);
    if (it != by_weight.end()) {
      Buffer f32(size_t(t.numel()) * sizeof(float));
      convert_to_f32(t.data, t.dtype, f32.as<float>(), size_t(t.numel()));
      lora_merge_into(*it->second, f32.as<float>(), loaded.arch->weights_are_kn);
      Buffer out(size_t(t.numel()) * dtype_size(t.dtype));
      convert_from_f32(f32.as<float>(), out.data(), t.dtype, size_t(t.numel()));
      t = Tensor::with_shape(out.data(), t.dtype, t.shape.data(), t.ndim);
      merged.push_back(std::move(out));
    }
    tensors.push_back({name, t});
  }
  fs::create_directories(out_dir);
  write_safetensors((fs::path(out_dir) / "model.safetensors").string(), tensors,
                    {{"format", "pt"}});
  // Everything else of the base (config, tokenizer, generation config) as it is.
  for (const fs::directory_entry& e : fs::directory_iterator(base_dir)) {
    std::string file = e.path().filename().string();
    bool weights = file.ends_with(".safetensors") || file.ends_with(".safetensors.index.json") ||
                   file.ends_with(".bin") || file.ends_with(".bin.index.json");
    if (e.is_regular_file() && !weights)
      fs::copy_file(e.path(), fs::path(out_dir) / file, fs::copy_options::overwrite_existing);
  }
  return merged.size();
}

}  // namespace zoft
