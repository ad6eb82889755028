#include "cli/common.h"

#include <CLI/CLI.hpp>
#include <iostream>
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
                  "weights budget per tier, e.g. cpu=20GiB (gpu=8GiB is planned, not yet run); "
                  "layers beyond it stream from --offload-dir");
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
  return parse_device(options.device);
}

DType apply_placement(const PlacementOptions& options, bool cuda_ok) {
  if (options.device == "cuda") {
    std::string why = cuda_unavailable(cuda_ok);
    if (!why.empty()) fail("--device cuda: {}; use --device cpu", why);
    if (!options.max_memory.empty())
      fail("--device cuda: --max-memory (offload) is not supported on the GPU yet");
  } else if (options.device != "cpu") {
    fail("--device '{}' is not known: use cpu or cuda", options.device);
  }
  check_thread_count(options.threads, "--threads");
  if (options.prefetch < 0) fail("--prefetch must be >= 0, got {}", options.prefetch);
  if (!options.max_memory.empty()) runtime::parse_max_memory(options.max_memory);  // fail early
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
  o.offload_dir = options.offload_dir;
  o.prefetch = options.prefetch;
  return runtime::Offload::attach(model, path, o);
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
