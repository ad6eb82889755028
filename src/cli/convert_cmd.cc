// zoft convert SRC OUT_DIR [--dtype f32|bf16|f16] [--threads N] [--json]
// SRC: a .gguf file (dequantised, renamed to HF names, tokenizer rebuilt from its metadata) or
// an HF directory (re-saved as one model.safetensors in the chosen dtype, tokenizer files
// copied). OUT_DIR gets config.json, model.safetensors, generation_config.json and the tokenizer
// files; transformers' AutoModelForCausalLM / AutoTokenizer load it.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "io/gguf.h"
#include "io/json_file.h"
#include "io/mapped_file.h"
#include "io/safetensors.h"
#include "model/gguf_import.h"
#include "model/json_config.h"
#include "model/weights.h"
#include "text/gguf_tokenizer.h"

namespace zoft::cli {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct ConvertOptions {
  std::string src, out, dtype = "f32";
  int threads = 0;
  bool json = false;
};

// What gets written, whatever the source.
struct Converted {
  json config;
  std::shared_ptr<const TensorStore> tensors;
  std::map<std::string, std::string> files;  // other files of OUT_DIR: name -> contents
};

const char* torch_dtype_name(DType d) {
  return d == DType::F32 ? "float32" : d == DType::BF16 ? "bfloat16" : "float16";
}

// OUT_DIR must not be SRC (nor hold it): the conversion would overwrite what it reads.
void check_paths(const ConvertOptions& opt) {
  if (!fs::exists(opt.src)) fail("{}: no such file or directory", opt.src);
  if (fs::exists(opt.out) && !fs::is_directory(opt.out))
    fail("{}: exists and is not a directory", opt.out);
  if (fs::exists(opt.out) && fs::equivalent(opt.src, opt.out))
    fail("{}: the output directory is the source: choose another OUT_DIR", opt.out);
  if (fs::is_directory(opt.src)) return;
  if (fs::exists(opt.out / fs::path("model.safetensors")) &&
      fs::equivalent(opt.src, opt.out / fs::path("model.safetensors")))
    fail("{}: would overwrite the source file", opt.out);
}

// tokenizer_config.json for transformers' AutoTokenizer: the fast tokenizer from
// tokenizer.json as it is (no class that rebuilds the pipeline), and the special tokens' names.
json tokenizer_config(const text::TokenizerSpec& spec, const GgufFile& gguf, int64_t max_length) {
  json c = {{"tokenizer_class", "PreTrainedTokenizerFast"},
            {"clean_up_tokenization_spaces", false},
            {"model_max_length", max_length},
            {"add_bos_token", !spec.prefix_ids.empty()},
            {"add_eos_token", !spec.suffix_ids.empty()}};
  auto name = [&](const std::string& s) { return s.empty() ? json(nullptr) : json(s); };
  c["bos_token"] = name(spec.bos_token);
  c["eos_token"] = name(spec.eos_token);
  c["pad_token"] = name(spec.pad_token);
  if (auto unk = gguf.opt_u32("tokenizer.ggml.unknown_token_id"))
    c["unk_token"] = name(text::token_text(spec, int32_t(*unk)));
  if (auto chat = gguf.opt_string("tokenizer.chat_template")) c["chat_template"] = *chat;
  return c;
}

json generation_config(const json& config) {
  json g = {{"_from_model_config", true}};
  for (const char* key : {"bos_token_id", "eos_token_id", "pad_token_id"})
    if (config.contains(key) && !config[key].is_null()) g[key] = config[key];
  return g;
}

// Checks that the imported model loads as zoft would load it: names and shapes against the
// config, copying nothing.
void check_loads(const json& config, const std::shared_ptr<const TensorStore>& tensors,
                 const std::string& origin) {
  LoadedConfig loaded = read_model_config_json(JsonConfig::from_value(config, origin));
  check_weights(tensors, *loaded.arch, loaded.config);
}

Converted from_gguf(const std::string& path) {
  std::unique_ptr<GgufFile> gguf = GgufFile::open(path);
  ImportedModel imported = import_gguf(*gguf);
  Converted c;
  c.config = std::move(imported.config);
  c.tensors = std::make_shared<TensorStore>(path, std::move(imported.tensors));
  check_loads(c.config, c.tensors, path + " (GGUF metadata)");
  text::TokenizerSpec spec = text::tokenizer_spec_from_gguf(*gguf);
  text::Tokenizer check(spec);  // throws here, naming the problem, if the spec is inconsistent
  c.files["tokenizer.json"] = text::tokenizer_json_from_spec(spec);
  json tok_config = tokenizer_config(spec, *gguf, c.config.value("max_position_embeddings", 0));
  c.files["tokenizer_config.json"] = tok_config.dump(2) + "\n";
  c.files["generation_config.json"] = generation_config(c.config).dump(2) + "\n";
  return c;
}

// An HF directory: its config.json as it is, its tensors re-saved, its other files copied.
Converted from_hf_dir(const std::string& dir) {
  Converted c;
  c.config = read_json_file((fs::path(dir) / "config.json").string());
  if (!c.config.is_object()) fail("{}/config.json: expected a JSON object", dir);
  c.tensors =
      std::make_shared<TensorStore>(std::make_shared<const Checkpoint>(Checkpoint::open(dir)));
  // Refuses what zoft cannot run (a missing, transposed or mis-sized tensor), before anything
  // is written, as the loader would.
  LoadedConfig loaded = read_model_config(dir);
  check_weights(c.tensors, *loaded.arch, loaded.config);
  for (const char* name :
       {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
        "vocab.json", "merges.txt", "generation_config.json", "chat_template.jinja"}) {
    fs::path file = fs::path(dir) / name;
    if (fs::is_regular_file(file)) c.files[name] = read_text_file(file.string());
  }
  if (!c.files.count("generation_config.json"))
    c.files["generation_config.json"] = generation_config(c.config).dump(2) + "\n";
  return c;
}

// Every tensor in `dtype`: f32 ones that are already so are written from where they are.
size_t write_weights(const TensorStore& store, DType dtype, const std::string& path) {
  std::vector<Buffer> converted;
  std::vector<NamedTensor> tensors;
  for (const std::string& name : store.names()) {
    Tensor t = store.view(name);
    if (!t.is_contiguous()) fail("{}: tensor '{}' is not contiguous", store.origin(), name);
    if (t.dtype != dtype) {
      Buffer f32(size_t(t.numel()) * sizeof(float));
      convert_to_f32(t.data, t.dtype, f32.as<float>(), size_t(t.numel()));
      Buffer out(size_t(t.numel()) * dtype_size(dtype));
      convert_from_f32(f32.as<float>(), out.data(), dtype, size_t(t.numel()));
      t = Tensor::with_shape(out.data(), dtype, t.shape.data(), t.ndim);
      converted.push_back(std::move(out));
    }
    tensors.push_back({name, t});
  }
  write_safetensors(path, tensors, {{"format", "pt"}});
  return tensors.size();
}

void run_convert(const ConvertOptions& opt) {
  check_thread_count(opt.threads, "--threads");
  ThreadPool::set_global_threads(opt.threads);
  DType dtype = parse_dtype(opt.dtype);
  check_paths(opt);
  auto start = std::chrono::steady_clock::now();
  bool gguf = is_gguf_file(opt.src);
  if (!gguf && !fs::is_directory(opt.src))
    fail("{}: expected a .gguf file or a Hugging Face model directory", opt.src);
  Converted c = gguf ? from_gguf(opt.src) : from_hf_dir(opt.src);
  c.config["torch_dtype"] = torch_dtype_name(dtype);
  if (c.config.contains("dtype")) c.config["dtype"] = torch_dtype_name(dtype);

  fs::create_directories(opt.out);
  fs::path out(opt.out);
  size_t count = write_weights(*c.tensors, dtype, (out / "model.safetensors").string());
  write_json_file((out / "config.json").string(), c.config);
  for (const auto& [name, contents] : c.files) write_file_atomic((out / name).string(), contents);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  uint64_t parameters = 0;
  for (const std::string& name : c.tensors->names()) parameters += c.tensors->view(name).numel();
  json summary = {{"source", opt.src},
                  {"output", opt.out},
                  {"source_format", gguf ? "gguf" : "hf"},
                  {"model_type", c.config.value("model_type", "")},
                  {"dtype", dtype_name(dtype)},
                  {"tensors", count},
                  {"parameters", parameters},
                  {"bytes", fs::file_size(out / "model.safetensors")},
                  {"seconds", seconds}};
  if (opt.json)
    std::printf("%s\n", summary.dump().c_str());
  else
    std::printf("wrote %s: %s, %zu tensors, %llu parameters as %s, in %.1fs\n", opt.out.c_str(),
                summary["model_type"].get<std::string>().c_str(), count,
                (unsigned long long)parameters, dtype_name(dtype), seconds);
}

}  // namespace

void add_convert_command(CLI::App& app) {
  auto opt = std::make_shared<ConvertOptions>();
  CLI::App* cmd = app.add_subcommand("convert", "GGUF or HF model -> HF safetensors directory");
  cmd->add_option("SRC", opt->src, ".gguf file or Hugging Face model directory")->required();
  cmd->add_option("OUT_DIR", opt->out, "output directory (created; its files are replaced)")
      ->required();
  cmd->add_option("--dtype", opt->dtype, "storage dtype of the output: f32, bf16 or f16");
  cmd->add_option("--threads", opt->threads, "CPU threads (0 = all cores)");
  cmd->add_flag("--json", opt->json, "print one JSON object");
  cmd->callback([opt] { run_convert(*opt); });
}

}  // namespace zoft::cli
