#include "cli/common.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "backend/ops.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "model/lora_io.h"
#include "text/file_text.h"

namespace zoft::cli {

void add_placement_options(CLI::App* cmd, PlacementOptions& options) {
  cmd->add_option("--device", options.device,
                  "cpu, or cuda (zoft eval / generate; a build with ZOFT_CUDA and a GPU)");
  cmd->add_option("--dtype", options.dtype, "compute dtype: f32 or bf16");
  cmd->add_option("--threads", options.threads, "CPU threads (0 = all cores)");
  cmd->add_option("--max-memory", options.max_memory,
                  "weights budget per tier, e.g. gpu=8GiB,cpu=20GiB: with --device cuda layers "
                  "beyond gpu= stream from RAM; beyond cpu= from --offload-dir");
  cmd->add_option("--offload-dir", options.offload_dir, "directory for the offload file");
  cmd->add_option("--prefetch", options.prefetch, "blocks read ahead while one computes");
}

// Why --device cuda cannot run here, or "" when it can.
static std::string cuda_unavailable(bool cuda_ok) {
  if (!cuda_ok)
    return "this command runs on the cpu only so far (zoft eval and generate run on cuda)";
  return ops::unavailable_reason(Device::CUDA);
}

Device placement_device(const PlacementOptions& options) {
  return options.device == "sim" ? Device::CPU : parse_device(options.device);
}

bool uses_gpu_tier(const PlacementOptions& options) {
  return runtime::is_gpu_tier_device(options.device) && !options.max_memory.empty() &&
         runtime::parse_max_memory(options.max_memory).gpu.has_value();
}

// --device and --max-memory together: a GPU device streams through a gpu= budget; the
// simulated one exists only for that.
static void check_device_budget(const PlacementOptions& options) {
  const runtime::Budgets budgets = runtime::parse_max_memory(options.max_memory);  // fail early
  if (options.device == "cpu" || budgets.gpu) return;
  fail(
      "--device {} --max-memory {}: give a gpu= budget too (e.g. gpu=8GiB,{}) for the weights on "
      "the device",
      options.device, options.max_memory, options.max_memory);
}

DType apply_placement(const PlacementOptions& options, bool cuda_ok) {
  if (options.device == "cuda") {
    std::string why = cuda_unavailable(cuda_ok);
    if (!why.empty()) fail("--device cuda: {}; use --device cpu", why);
  } else if (options.device == "sim") {
    if (!cuda_ok) fail("--device sim: this command has no GPU tier; use --device cpu");
    if (options.max_memory.empty())
      fail(
          "--device sim (a testing aid: the GPU tier on a simulated device) needs --max-memory "
          "gpu=...");
  } else if (options.device != "cpu") {
    fail("--device '{}' is not known: use cpu or cuda", options.device);
  }
  check_thread_count(options.threads, "--threads");
  if (options.prefetch < 0) fail("--prefetch must be >= 0, got {}", options.prefetch);
  if (!options.max_memory.empty()) check_device_budget(options);
  ThreadPool::set_global_threads(options.threads);
  DType dtype = parse_dtype(options.dtype);
  if (dtype == DType::F16) fail("--dtype f16 is not supported on the CPU: use f32 or bf16");
  return dtype;
}

std::unique_ptr<LoraAdapters> attach_adapter(Decoder& model, const std::string& dir,
                                             const PlacementOptions& options) {
  if (dir.empty()) return nullptr;
  if (options.device != "cpu" || !options.max_memory.empty())
    fail(
        "--adapter runs on the CPU with every layer resident: for --device cuda or "
        "--max-memory, merge the adapter first (zoft merge BASE ADAPTER OUT)");
  return attach_peft_adapter(model, dir);
}

std::unique_ptr<runtime::Offload> attach_offload(Decoder& model, const std::string& path,
                                                 const PlacementOptions& options) {
  runtime::OffloadOptions o;
  o.max_memory = options.max_memory;
  if (uses_gpu_tier(options)) {  // the GPU tier streams from RAM; disk only under a cpu= budget
    std::optional<uint64_t> cpu = runtime::parse_max_memory(options.max_memory).cpu;
    if (!cpu) return nullptr;
    o.max_memory = fmt::format("cpu={}", *cpu);
  }
  o.offload_dir = options.offload_dir;
  o.prefetch = options.prefetch;
  return runtime::Offload::attach(model, path, o);
}

std::unique_ptr<runtime::GpuTier> attach_gpu_tier(Decoder& model, const PlacementOptions& options) {
  if (!uses_gpu_tier(options)) return nullptr;
  if (model.residency())
    fail(
        "--max-memory {}: the cpu= budget streams layers from disk, which the GPU tier does not "
        "stream through yet: raise cpu= to hold the model (or drop it)",
        options.max_memory);
  runtime::GpuTierOptions o;
  o.device = options.device;
  o.budget = *runtime::parse_max_memory(options.max_memory).gpu;
  o.prefetch = options.prefetch;
  return runtime::GpuTier::attach(model, o);
}

namespace {
// The offload and tier of a task run's model; the tier's figures are kept when it detaches,
// before the offload under it.
struct TaskPlacement {
  std::unique_ptr<runtime::Offload> offload;
  std::unique_ptr<runtime::GpuTier> tier;
  std::optional<runtime::GpuTierReport>* report = nullptr;
  ~TaskPlacement() {
    if (tier && report) *report = tier->report();
    tier.reset();
  }
};
}  // namespace

std::function<std::shared_ptr<void>(Decoder&)> task_placement(
    const std::string& model_path, const PlacementOptions& options,
    std::optional<runtime::GpuTierReport>* report) {
  if (options.device == "cuda" && !uses_gpu_tier(options))
    fail("--task on --device cuda runs through the GPU tier only: add --max-memory gpu=...");
  return [model_path, options, report](Decoder& model) -> std::shared_ptr<void> {
    auto placed = std::make_shared<TaskPlacement>();
    placed->offload = attach_offload(model, model_path, options);
    placed->tier = attach_gpu_tier(model, options);
    placed->report = report;
    return placed;
  };
}

void add_gpu_tier_report(nlohmann::json& j, const runtime::GpuTierReport& r) {
  j["gpu_tier"] = {{"bytes_uploaded", r.stats.bytes_uploaded},
                   {"bytes_written_back", r.stats.bytes_written_back},
                   {"uploads", r.stats.uploads},
                   {"write_backs", r.stats.write_backs},
                   {"upload_wait_s", r.stats.upload_wait_seconds},
                   {"seconds", r.seconds},
                   {"h2d_gbps", r.h2d_gbps},
                   {"bus_floor_s", r.bus_floor_seconds()},
                   {"peak_device_bytes", r.peak_device_bytes},
                   {"budget_bytes", r.budget}};
}

std::string read_text_file(const std::string& path) {
  std::ostringstream out;
  if (path == "-") {
    out << std::cin.rdbuf();
    return out.str();
  }
  return text::read_text_file(path);  // decompresses .xz, as the data readers do
}

}  // namespace zoft::cli

namespace zoft::cli {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string jsonl_text(const std::string& path, const std::string& raw, const std::string& field) {
  std::istringstream lines(raw);
  std::string line, out;
  int64_t number = 0;
  while (std::getline(lines, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json record = nlohmann::json::parse(line, nullptr, false);
    if (record.is_discarded() || !record.is_object())
      fail("{}:{}: not a JSON object", path, number);
    auto it = record.find(field);
    if (it == record.end() || !it->is_string())
      fail("{}:{}: no string field '{}' (choose one with --text-field)", path, number, field);
    out += (out.empty() ? "" : "\n\n") + it->get<std::string>();
  }
  return out;
}

}  // namespace

std::string read_eval_text(const std::string& path, const std::string& text_field) {
  std::string raw = read_text_file(path);
  bool jsonl = ends_with(path, ".jsonl") || ends_with(path, ".jsonl.xz");
  return jsonl ? jsonl_text(path, raw, text_field) : raw;
}

std::vector<int32_t> eval_tokens(const text::Tokenizer& tokenizer, const std::string& text,
                                 int64_t max_tokens, const std::string& origin) {
  std::vector<int32_t> ids = tokenizer.encode(text, true);
  if (max_tokens > 0 && int64_t(ids.size()) > max_tokens) ids.resize(size_t(max_tokens));
  if (ids.size() < 2) fail("{}: the text has fewer than 2 tokens", origin);
  return ids;
}

std::pair<int64_t, int64_t> eval_window(const ModelConfig& config, int64_t window, int64_t stride) {
  if (window > config.max_positions)
    fail("--window {} exceeds the model's max_position_embeddings {}: use at most {}", window,
         config.max_positions, config.max_positions);
  int64_t w = window > 0 ? window : std::min<int64_t>(config.max_positions, 1024);
  int64_t s = stride > 0 ? stride : std::max<int64_t>(1, w / 2);
  return {w, s};
}

}  // namespace zoft::cli
