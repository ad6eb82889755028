// Flags that mean the same in every subcommand (DESIGN.md: placement flags).
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>

#include "core/dtype.h"
#include "model/decoder.h"
#include "model/lora.h"
#include "runtime/gpu_tier.h"
#include "runtime/offload.h"
#include "text/tokenizer.h"

namespace CLI {
class App;
}

namespace zoft::cli {

struct PlacementOptions {
  // cpu or cuda; "sim" is a testing aid (runtime/gpu_tier.h): the GPU tier on a simulated device.
  std::string device = "cpu";
  std::string dtype = "f32";
  int threads = 0;  // 0 = all cores
  // Offload (runtime/, docs/offload.md): budgets such as "cpu=20GiB"; empty = all resident.
  std::string max_memory, offload_dir;
  int64_t prefetch = 2;
};

void add_placement_options(CLI::App* cmd, PlacementOptions& options);
// Validates the flags, sizes the thread pool, and returns the compute dtype. `--device cuda` is
// accepted only by commands that pass cuda_ok (their model is placed there with Decoder::to_device:
// eval, generate), and only in a build with the CUDA backend on a machine with a GPU; elsewhere it
// is a clear error. `--device sim` (the GPU tier's testing aid) likewise needs cuda_ok, and a
// gpu= budget.
DType apply_placement(const PlacementOptions& options, bool cuda_ok = false);
// The device the ops of --device run on (after apply_placement accepted it): sim computes on
// the CPU.
Device placement_device(const PlacementOptions& options);
// Whether --max-memory gpu= streams the weights through the GPU tier (--device cuda or sim).
bool uses_gpu_tier(const PlacementOptions& options);
// With --max-memory: plans the placement of `model` (loaded from `path`) within the cpu= budget,
// prints the plan and streams what does not fit from --offload-dir; null when everything is
// resident. Keep the result alive while the model is used.
std::unique_ptr<runtime::Offload> attach_offload(Decoder& model, const std::string& path,
                                                 const PlacementOptions& options);
// With a gpu= budget on --device cuda (or sim): the GPU tier (runtime/gpu_tier.h) attached to
// `model`, its plan printed; null otherwise. Keep the result alive while the model is used.
std::unique_ptr<runtime::GpuTier> attach_gpu_tier(Decoder& model, const PlacementOptions& options);
// zoft eval --task (and Python's zoft.evaluate): how the task scorer places the model it loads
// (train/trainer.h's PlaceModel): offload and GPU tier as the placement says; the tier's figures
// land in *report when it detaches. --device cuda needs a gpu= budget (one line otherwise).
std::function<std::shared_ptr<void>(Decoder&)> task_placement(
    const std::string& model_path, const PlacementOptions& options,
    std::optional<runtime::GpuTierReport>* report);
// The tier's measured figures as j["gpu_tier"] (bytes moved, waits, bus floor, peak memory).
void add_gpu_tier_report(nlohmann::json& j, const runtime::GpuTierReport& r);

// --adapter DIR: the PEFT LoRA adapter of DIR attached to `model` (model/lora_io.h); null when
// `dir` is empty. The adapter runs in the CPU forward: with --device cuda or --max-memory it is
// refused (merge it with `zoft merge` instead). Keep the result alive while the model is used.
std::unique_ptr<LoraAdapters> attach_adapter(Decoder& model, const std::string& dir,
                                             const PlacementOptions& options);

// Reads a whole file ("-" = stdin), decompressing a .xz file; errors name the path.
std::string read_text_file(const std::string& path);

// zoft eval perplexity (and the Python package's Model.perplexity): the text of a .txt file, or
// the `text_field` strings of a .jsonl file's records joined by blank lines (as HF's perplexity
// recipe joins a dataset); either optionally .xz.
std::string read_eval_text(const std::string& path, const std::string& text_field);
// The ids scored: the text with BOS/EOS, the first max_tokens of them (0 = all), at least 2
// (`origin` names the text in that error).
std::vector<int32_t> eval_tokens(const text::Tokenizer& tokenizer, const std::string& text,
                                 int64_t max_tokens, const std::string& origin);
// The sliding window and stride (0 = defaults: min(positions, 1024), and half the window).
std::pair<int64_t, int64_t> eval_window(const ModelConfig& config, int64_t window, int64_t stride);

}  // namespace zoft::cli
