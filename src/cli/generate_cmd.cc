// zoft generate --model MODEL --prompt TEXT [--adapter DIR] [--max-new-tokens N --temperature T
// --top-k K
//                --top-p P --repetition-penalty R --seed S] [--ignore-eos] [--json]
//                [--device cpu|cuda] [--max-memory gpu=B,cpu=B --offload-dir DIR --prefetch K]
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"
#include "model/generate.h"
#include "text/tokenizer.h"

namespace zoft::cli {

namespace {

struct GenerateOptions {
  std::string model, prompt, adapter;
  SamplingOptions sampling;
  int64_t seed = 0;  // parsed signed, so that -1 is refused rather than wrapped
  PlacementOptions placement;
  bool json = false;
  bool no_special = false;
  bool ignore_eos = false;  // benchmarks: always produce max_new_tokens
};

// The most new tokens --max-new-tokens accepts before the model is read (the model's
// max_position_embeddings bounds it further: generation_capacity).
constexpr int64_t kMaxNewTokens = int64_t(1) << 24;

void run_generate(GenerateOptions& opt) {
  if (opt.seed < 0) fail("--seed must be >= 0, got {}", opt.seed);
  opt.sampling.seed = uint64_t(opt.seed);
  if (opt.sampling.max_new_tokens < 0 || opt.sampling.max_new_tokens > kMaxNewTokens)
    fail("--max-new-tokens must be between 0 and {}, got {}", kMaxNewTokens,
         opt.sampling.max_new_tokens);
  DType dtype = apply_placement(opt.placement, /*cuda_ok=*/true);
  text::Tokenizer tokenizer = text::Tokenizer::from_file(opt.model);
  Decoder model = Decoder::load(opt.model, dtype);
  auto adapter = attach_adapter(model, opt.adapter, opt.placement);  // --adapter: LoRA
  auto offload = attach_offload(model, opt.model, opt.placement);    // --max-memory cpu=: disk
  auto gpu_tier = attach_gpu_tier(model, opt.placement);  // --max-memory gpu=: stream from RAM
  std::vector<int32_t> prompt = tokenizer.encode(opt.prompt, !opt.no_special);
  if (prompt.empty()) fail("the prompt encodes to no tokens: give some text");
  for (int32_t id : {tokenizer.eos_id(), model.config().eos_id})
    if (id >= 0 && !opt.ignore_eos) opt.sampling.stop_ids.push_back(id);

  // --device cuda: the weights and the KV cache on the GPU; the sampler runs on the host on
  // the last position's logits, copied back every step.
  if (placement_device(opt.placement) != Device::CPU && !gpu_tier)
    model = model.to_device(placement_device(opt.placement));

  auto start = std::chrono::steady_clock::now();
  auto first_token = start;
  bool stream = !opt.json;
  std::vector<int32_t> produced = generate(model, prompt, opt.sampling, [&](int32_t id) {
    if (first_token == start) first_token = std::chrono::steady_clock::now();
    if (stream && !tokenizer.is_special(id)) {
      std::string bytes = tokenizer.token_bytes(id);
      std::fwrite(bytes.data(), 1, bytes.size(), stdout);
      std::fflush(stdout);
    }
  });
  auto end = std::chrono::steady_clock::now();
  if (stream) std::printf("\n");
  double prefill_s = std::chrono::duration<double>(first_token - start).count();
  double decode_s = std::chrono::duration<double>(end - first_token).count();
  double decode_rate = produced.size() > 1 ? double(produced.size() - 1) / decode_s : 0.0;
  if (opt.json) {
    nlohmann::json j = {{"prompt_tokens", prompt.size()},
                        {"new_tokens", produced.size()},
                        {"ids", produced},
                        {"text", tokenizer.decode(produced, true)},
                        {"prefill_s", prefill_s},
                        {"prefill_tokens_per_s", double(prompt.size()) / prefill_s},
                        {"decode_tokens_per_s", decode_rate}};
    if (gpu_tier) add_gpu_tier_report(j, gpu_tier->report());
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::fprintf(stderr, "[%zu prompt tokens in %.2fs, %zu new tokens at %.1f tokens/s]\n",
                 prompt.size(), prefill_s, produced.size(), decode_rate);
    if (gpu_tier) std::fprintf(stderr, "zoft: %s\n", gpu_tier->report().text().c_str());
  }
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto opt = std::make_shared<GenerateOptions>();
  CLI::App* cmd = app.add_subcommand("generate", "continue a prompt");
  cmd->add_option("--model", opt->model, "HF model directory")->required();
  cmd->add_option("--prompt", opt->prompt, "the text to continue")->required();
  cmd->add_option("--adapter", opt->adapter, "a PEFT LoRA adapter directory to apply");
  cmd->add_option("--max-new-tokens", opt->sampling.max_new_tokens, "tokens to generate");
  cmd->add_option("--temperature", opt->sampling.temperature, "0 = greedy");
  cmd->add_option("--top-k", opt->sampling.top_k, "keep the k most likely tokens (0 = off)");
  cmd->add_option("--top-p", opt->sampling.top_p, "nucleus sampling mass (1 = off)");
  cmd->add_option("--repetition-penalty", opt->sampling.repetition_penalty, "1 = off");
  cmd->add_option("--seed", opt->seed, "sampling seed (>= 0)");
  cmd->add_flag("--no-special", opt->no_special, "do not add BOS/EOS to the prompt");
  cmd->add_flag("--ignore-eos", opt->ignore_eos,
                "do not stop at end-of-sequence: always --max-new-tokens (benchmarks)");
  cmd->add_flag("--json", opt->json, "print one JSON object instead of streaming text");
  add_placement_options(cmd, opt->placement);
  cmd->callback([opt] { run_generate(*opt); });
}

}  // namespace zoft::cli
