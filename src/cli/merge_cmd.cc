// zoft merge BASE ADAPTER OUT [--json]
// BASE: an HF model directory; ADAPTER: a PEFT LoRA adapter directory (adapter_config.json +
// adapter_model.safetensors, e.g. written by `zoft train` with a peft section). OUT gets the
// merged checkpoint (W + s B A in each weight's dtype) and BASE's other files, so that
// transformers' AutoModelForCausalLM and every zoft command load it as a plain model.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "model/lora_io.h"

namespace zoft::cli {

namespace {

struct MergeOptions {
  std::string base, adapter, out;
  bool json = false;
};

void run_merge(const MergeOptions& opt) {
  auto start = std::chrono::steady_clock::now();
  size_t merged = write_merged_checkpoint(opt.base, opt.adapter, opt.out);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (opt.json) {
    nlohmann::json j = {{"base", opt.base},
                        {"adapter", opt.adapter},
                        {"output", opt.out},
                        {"merged_weights", merged},
                        {"seconds", seconds}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("wrote %s: %zu weights merged with the adapter, in %.1fs\n", opt.out.c_str(),
                merged, seconds);
  }
}

}  // namespace

void add_merge_command(CLI::App& app) {
  auto opt = std::make_shared<MergeOptions>();
  CLI::App* cmd = app.add_subcommand("merge", "merge a LoRA adapter into its base model");
  cmd->add_option("BASE", opt->base, "HF model directory")->required();
  cmd->add_option("ADAPTER", opt->adapter, "PEFT LoRA adapter directory")->required();
  cmd->add_option("OUT", opt->out, "output directory (created; its files are replaced)")
      ->required();
  cmd->add_flag("--json", opt->json, "print one JSON object");
  cmd->callback([opt] { run_merge(*opt); });
}

}  // namespace zoft::cli
