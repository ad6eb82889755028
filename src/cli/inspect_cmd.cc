// zoft inspect MODEL [--json]
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "backend/cpu/isa.h"
#include "cli/commands.h"
#include "core/cpu_features.h"
#include "model/inspect.h"

namespace zoft::cli {

namespace {

struct InspectOptions {
  std::string model;
  bool json = false;
};

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) bytes /= 1024, ++u;
  return fmt::format("{:.2f} {}", bytes, units[u]);
}

void run_inspect(const InspectOptions& opt) {
  ModelSummary s = summarize_model(opt.model);
  const ModelConfig& c = s.config;
  int64_t sliding = 0;
  for (int64_t w : c.layer_window) sliding += w > 0;
  double f32 = double(s.parameters) * 4, bf16 = double(s.parameters) * 2;
  double layer_bf16 = double(s.layer_parameters) * 2;
  nlohmann::json j = {
      {"path", s.path},
      {"model_type", c.model_type},
      {"architecture", s.arch},
      {"layers", c.num_layers},
      {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size},
      {"heads", c.num_heads},
      {"kv_heads", c.num_kv_heads},
      {"head_dim", c.head_dim},
      {"vocab_size", c.vocab_size},
      {"max_positions", c.max_positions},
      {"sliding_layers", sliding},
      {"tied_embeddings", c.tie_embeddings},
      {"parameters", s.parameters},
      {"layer_parameters", s.layer_parameters},
      {"embedding_parameters", s.embedding_parameters},
      {"checkpoint_dtypes", s.checkpoint_dtypes},
      {"checkpoint_bytes", s.checkpoint_bytes},
      {"weights_bytes_f32", uint64_t(f32)},
      {"weights_bytes_bf16", uint64_t(bf16)},
      {"layer_bytes_bf16", uint64_t(layer_bf16)},
      {"kv_cache_bytes_per_token", s.kv_bytes_per_token},
      {"cpu", cpu_features().model},
      {"cpu_features", cpu_feature_names(cpu_features())},
      {"cpu_path", cpu::isa_name(cpu::active_isa())},
  };
  if (!opt.json) {
    std::printf("model          %s\n", s.path.c_str());
    std::printf("architecture   %s (model_type %s)\n", s.arch.c_str(), c.model_type.c_str());
    std::printf("layers         %lld (%lld sliding-window)\n", (long long)c.num_layers,
                (long long)sliding);
    std::printf("hidden         %lld, intermediate %lld\n", (long long)c.hidden_size,
                (long long)c.intermediate_size);
    std::printf("attention      %lld heads, %lld kv heads, head_dim %lld\n", (long long)c.num_heads,
                (long long)c.num_kv_heads, (long long)c.head_dim);
    std::printf("vocab          %lld%s\n", (long long)c.vocab_size,
                c.tie_embeddings ? " (tied embeddings)" : "");
    std::printf("parameters     %.3f M (one layer %.3f M, embeddings %.3f M)\n",
                double(s.parameters) / 1e6, double(s.layer_parameters) / 1e6,
                double(s.embedding_parameters) / 1e6);
    std::printf("checkpoint     %s in %s\n", human_bytes(double(s.checkpoint_bytes)).c_str(),
                s.checkpoint_dtypes.c_str());
    std::printf("memory         weights %s in f32, %s in bf16; one layer %s in bf16\n",
                human_bytes(f32).c_str(), human_bytes(bf16).c_str(),
                human_bytes(layer_bf16).c_str());
    std::printf("kv cache       %s per token (f32)\n",
                human_bytes(double(s.kv_bytes_per_token)).c_str());
    std::printf("cpu path       %s\n", cpu::isa_description().c_str());
  }
  if (opt.json) std::printf("%s\n", j.dump().c_str());
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  auto opt = std::make_shared<InspectOptions>();
  CLI::App* cmd = app.add_subcommand("inspect", "architecture, parameter count, dtypes, memory");
  cmd->add_option("model", opt->model, "HF model directory")->required();
  cmd->add_flag("--json", opt->json, "print one JSON object");
  cmd->callback([opt] { run_inspect(*opt); });
}

}  // namespace zoft::cli
