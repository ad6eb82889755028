#include "train/memory_check.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include "core/error.h"
#include "model/parameters.h"
#include "runtime/offload.h"
#include "runtime/plan.h"
#include "train/method.h"

namespace zoft {

namespace {

std::optional<std::string> read_small_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::optional<uint64_t> read_number(const std::string& path) {
  std::optional<std::string> text = read_small_file(path);
  if (!text) return std::nullopt;
  try {
    size_t used = 0;
    uint64_t v = std::stoull(*text, &used);
    return used > 0 ? std::optional<uint64_t>(v) : std::nullopt;
  } catch (const std::exception&) {  // "max": no limit
    return std::nullopt;
  }
}

// limit - usage of the process's cgroup (v2, else v1), or nullopt without a limit.
std::optional<uint64_t> cgroup_headroom() {
  std::string dir = "/sys/fs/cgroup";
  if (std::optional<std::string> self = read_small_file("/proc/self/cgroup")) {
    std::istringstream lines(*self);
    for (std::string line; std::getline(lines, line);)
      if (line.rfind("0::", 0) == 0) dir += line.substr(3);
  }
  std::optional<uint64_t> limit = read_number(dir + "/memory.max");
  std::optional<uint64_t> usage = read_number(dir + "/memory.current");
  if (!limit) {
    limit = read_number("/sys/fs/cgroup/memory/memory.limit_in_bytes");
    usage = read_number("/sys/fs/cgroup/memory/memory.usage_in_bytes");
  }
  if (!limit || *limit >= (uint64_t(1) << 60)) return std::nullopt;  // v1: no limit
  return *limit - std::min(*limit, usage.value_or(0));
}

std::string gib(double bytes) {
  return fmt::format("{:.1f} GiB", bytes / double(1 << 30));
}

}  // namespace

MemoryEstimate estimate_training_memory(const ModelConfig& config, double weight_bytes,
                                        int64_t rank_rows, int64_t global_rows, int64_t seq,
                                        int forwards) {
  MemoryEstimate e;
  e.weights = weight_bytes;
  // activation_bytes is linear in the tokens beyond its capped loss chunk: evaluate it at a
  // size that cannot overflow and scale up.
  const double tokens = double(rank_rows) * double(seq);
  const int64_t at = int64_t(std::min(tokens, double(int64_t(1) << 24)));
  e.activations =
      double(runtime::activation_bytes(config, at, forwards, at)) * (tokens / double(at));
  e.batch = double(global_rows) * double(seq) * (4 + 1 + 4 + 4);
  return e;
}

std::optional<uint64_t> parse_mem_available(const std::string& meminfo) {
  std::istringstream lines(meminfo);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("MemAvailable:", 0) != 0) continue;
    std::istringstream fields(line.substr(13));
    uint64_t kib = 0;
    std::string unit;
    if (fields >> kib >> unit && unit == "kB") return kib * 1024;
  }
  return std::nullopt;
}

std::optional<AvailableMemory> available_memory() {
  std::optional<AvailableMemory> out;
  if (std::optional<std::string> meminfo = read_small_file("/proc/meminfo"))
    if (std::optional<uint64_t> bytes = parse_mem_available(*meminfo))
      out = AvailableMemory{*bytes, "MemAvailable"};
  if (std::optional<uint64_t> headroom = cgroup_headroom())
    if (!out || *headroom < out->bytes) out = AvailableMemory{*headroom, "the cgroup limit"};
  return out;
}

void check_training_memory(const MemoryEstimate& e, const AvailableMemory& available,
                           int ranks_here, const std::string& source) {
  const double per_rank = double(available.bytes) / double(std::max(1, ranks_here));
  if (e.total() <= per_rank) return;
  fail(
      "{}: training needs about {} per process (weights {} + activations {} + batch {}) but {} "
      "is available ({}{}); lower trainer.batch_size, data.max_seq_length or optim.samples",
      source, gib(e.total()), gib(e.weights), gib(e.activations), gib(e.batch), gib(per_rank),
      available.source, ranks_here > 1 ? fmt::format(", shared by {} ranks", ranks_here) : "");
}

// The weights (and a method's state beside them) as they will be resident, then the estimate.
void check_recipe_memory(const Recipe& r, Decoder& model, const TrainData& data,
                         const dist::Communicator& comm,
                         const std::optional<AvailableMemory>& available) {
  if (!available) return;
  const DType compute = model.weights().compute_dtype;
  const bool first_order = !is_forward_only(r.optim.method);
  // LoRA: the base is frozen (no optimizer state, no perturbation copy); the adapters' share is
  // a rounding error next to it.
  const bool trains_base = r.peft.method.empty();
  double weights = 0;
  std::map<int64_t, double> block_bytes;
  for (const ParameterRef& p : list_parameters(model)) {
    const double bytes =
        double(std::max<uint64_t>(p.tensor.nbytes(), p.tensor.numel() * dtype_size(compute)));
    weights += bytes;
    block_bytes[p.block] += bytes;
    if (first_order && trains_base)
      weights += double(p.tensor.numel()) * 4.0 * (compute == DType::BF16 ? 4 : 3);
  }
  // ZO: the copy that undoes a forward's perturbation, of one block (zo2) or of all (plain).
  double zo_copy = 0;
  for (const auto& [block, bytes] : block_bytes) zo_copy = std::max(zo_copy, bytes);
  if (r.trainer.schedule == "plain") zo_copy = weights;
  if (!r.placement.max_memory.empty())  // offload: only the CPU budget's share is resident
    weights = std::min(
        weights,
        double(runtime::parse_max_memory(r.placement.max_memory).cpu.value_or(uint64_t(weights))));
  if (!first_order && trains_base) weights += zo_copy;
  int forwards = zo_forwards_per_step(r);
  if (first_order)
    forwards = r.trainer.gradient_checkpointing ? 3 : int(model.config().num_layers) + 2;
  const int64_t global_rows = r.trainer.batch_size * data.rows_per_example();
  const int64_t micro = first_order ? r.trainer.gradient_accumulation_steps : 1;
  MemoryEstimate e =
      estimate_training_memory(model.config(), weights, global_rows / comm.size() / micro,
                               global_rows, data.max_row_length(), forwards);
  check_training_memory(e, *available, comm.local_size(), r.source);
}

}  // namespace zoft
