#include "runtime/plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>

#include "core/error.h"

namespace zoft::runtime {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

uint64_t round_up(uint64_t n, uint64_t to) {
  return (n + to - 1) / to * to;
}

// A size to paste into --max-memory that is at least `bytes` ("3.96MiB"): rounded up, not to
// the nearest, so that the suggestion is always enough.
std::string at_least(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = double(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 4) v /= 1024.0, ++u;
  if (u == 0) return fmt::format("{}B", bytes);
  return fmt::format("{:.2f}{}", std::ceil(v * 100.0) / 100.0, units[u]);
}

// "1-3, 5" from sorted block numbers.
std::string ranges(const std::vector<int64_t>& blocks) {
  std::string out;
  for (size_t i = 0; i < blocks.size();) {
    size_t j = i;
    while (j + 1 < blocks.size() && blocks[j + 1] == blocks[j] + 1) ++j;
    out += out.empty() ? "" : ", ";
    out += i == j ? fmt::format("{}", blocks[i]) : fmt::format("{}-{}", blocks[i], blocks[j]);
    i = j + 1;
  }
  return out;
}

// Greedy split of layers 1..L into resident (`resident` tier) and streamed (`streamed` tier)
// within `avail` bytes, keeping `slots` slots of `slot` bytes. Shrinks the slot count to what
// is streamed (an extra slot would never be used). Returns the slot count, 0 if none fits.
int64_t split_layers(Plan& p, const std::vector<int64_t>& layers, uint64_t avail, uint64_t slot,
                     int64_t want_slots, Tier resident, Tier streamed) {
  int64_t slots = std::min<int64_t>(want_slots, int64_t(layers.size()));
  while (slots > 0 && uint64_t(slots) * slot > avail) --slots;
  if (slots == 0) return 0;
  for (;;) {
    uint64_t used = uint64_t(slots) * slot;
    int64_t n_streamed = 0;
    bool full = false;
    for (int64_t b : layers) {
      if (!full && used + p.block_bytes[size_t(b)] <= avail) {
        used += p.block_bytes[size_t(b)];
        p.home[size_t(b)] = resident;
      } else {
        full = true;  // keep the resident ones a prefix: the streamed ones then run back to back
        p.home[size_t(b)] = streamed;
        ++n_streamed;
      }
    }
    if (n_streamed >= slots) return n_streamed == 0 ? 0 : slots;
    slots = n_streamed;
  }
}

}  // namespace

uint64_t parse_bytes(std::string_view text, const std::string& what) {
  std::string s = lower(trim(text));
  size_t end = 0;
  while (end < s.size() && (std::isdigit(static_cast<unsigned char>(s[end])) || s[end] == '.'))
    ++end;
  std::string number = s.substr(0, end), unit(trim(std::string_view(s).substr(end)));
  double value = 0;
  try {
    size_t used = 0;
    value = std::stod(number, &used);
    if (used != number.size()) throw std::invalid_argument(number);
  } catch (const std::exception&) {
    fail("{}: '{}' is not a size (write e.g. 20GiB, 512MiB, 1.5GB or a number of bytes)", what,
         text);
  }
  static const std::pair<const char*, double> units[] = {{"", 1.0},
                                                         {"b", 1.0},
                                                         {"kb", 1e3},
                                                         {"mb", 1e6},
                                                         {"gb", 1e9},
                                                         {"tb", 1e12},
                                                         {"kib", 1024.0},
                                                         {"mib", 1048576.0},
                                                         {"gib", 1073741824.0},
                                                         {"tib", 1099511627776.0},
                                                         {"k", 1024.0},
                                                         {"m", 1048576.0},
                                                         {"g", 1073741824.0},
                                                         {"t", 1099511627776.0}};
  for (const auto& [name, scale] : units)
    if (unit == name) {
      double bytes = std::floor(value * scale);
      if (!(bytes >= 1) || bytes > 1.8e19) fail("{}: size '{}' is out of range", what, text);
      return uint64_t(bytes);
    }
  fail("{}: unknown unit in '{}' (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)", what, text);
}

Budgets parse_max_memory(std::string_view text) {
  Budgets b;
  std::string_view rest = text;
  if (trim(rest).empty()) fail("--max-memory is empty: write e.g. cpu=20GiB or gpu=8GiB,cpu=20GiB");
  while (!rest.empty()) {
    size_t comma = rest.find(',');
    std::string_view item = trim(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    size_t eq = item.find('=');
    if (eq == std::string_view::npos)
      fail("--max-memory '{}': expected tier=size items such as cpu=20GiB,gpu=8GiB", text);
    std::string tier = lower(trim(item.substr(0, eq)));
    uint64_t bytes = parse_bytes(item.substr(eq + 1), fmt::format("--max-memory {}", tier));
    if (tier == "cpu") {
      if (b.cpu) fail("--max-memory '{}': cpu given twice", text);
      b.cpu = bytes;
    } else if (tier == "gpu" || tier == "cuda" || tier == "0") {
      if (b.gpu) fail("--max-memory '{}': gpu given twice", text);
      b.gpu = bytes;
    } else {
      fail("--max-memory '{}': unknown tier '{}' (use cpu and gpu)", text, tier);
    }
  }
  return b;
}

std::string format_bytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = double(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 4) v /= 1024.0, ++u;
  return u == 0 ? fmt::format("{} B", bytes)
                : fmt::format("{:.{}f} {}", v, v < 10 ? 2 : 1, units[u]);
}

const char* tier_name(Tier tier) {
  switch (tier) {
    case Tier::Gpu:
      return "gpu";
    case Tier::Cpu:
      return "cpu";
    case Tier::Disk:
      return "disk";
  }
  return "?";
}

int64_t Plan::count(Tier tier) const {
  return std::count(home.begin(), home.end(), tier);
}

uint64_t Plan::bytes_of(Tier tier) const {
  uint64_t sum = 0;
  for (size_t b = 0; b < home.size(); ++b)
    if (home[b] == tier) sum += block_bytes[b];
  return sum;
}

namespace {

// The CPU-compute plan: blocks 0 and L+1 in RAM, layers in RAM or streamed from disk.
Plan cpu_plan(const PlanInput& in) {
  Plan p;
  p.block_bytes = in.block_bytes;
  p.budgets = in.budgets;
  p.activation_bytes = in.activation_bytes;
  const int64_t last = int64_t(in.block_bytes.size()) - 1;
  p.home.assign(in.block_bytes.size(), Tier::Cpu);
  uint64_t fixed = in.block_bytes.front() + in.block_bytes.back(), layers = 0, slot = 0;
  std::vector<int64_t> layer_ids;
  for (int64_t b = 1; b < last; ++b) {
    layers += in.block_bytes[size_t(b)];
    slot = std::max(slot, round_up(in.block_bytes[size_t(b)], 4096));
    layer_ids.push_back(b);
  }
  if (!in.budgets.cpu || fixed + layers <= *in.budgets.cpu) {
    p.ram_bytes = fixed + layers;
    return p;
  }
  const uint64_t cpu = *in.budgets.cpu;
  uint64_t avail = cpu > fixed ? cpu - fixed : 0;
  p.slot_bytes = slot;
  p.ram_slots = split_layers(p, layer_ids, avail, slot, in.prefetch + 2, Tier::Cpu, Tier::Disk);
  if (p.ram_slots == 0)
    fail(
        "--max-memory cpu={}: too small for this model: the embeddings and LM head (blocks 0 and "
        "{}) stay in RAM ({}) and a streamed layer needs one RAM slot ({}); give at least cpu={}",
        format_bytes(cpu), last, format_bytes(fixed), format_bytes(slot), at_least(fixed + slot));
  p.prefetch = std::min<int64_t>(in.prefetch, p.ram_slots - 1);
  p.ram_bytes = p.bytes_of(Tier::Cpu) + uint64_t(p.ram_slots) * slot;
  p.disk_bytes = p.bytes_of(Tier::Disk);
  return p;
}

// The GPU-compute plan: blocks 0 and L+1 on the GPU, layers on the GPU, in RAM or on disk.
Plan gpu_plan(const PlanInput& in) {
  Plan p;
  p.compute_on_gpu = true;
  p.bus_gbps = in.bus_gbps;
  p.block_bytes = in.block_bytes;
  p.budgets = in.budgets;
  p.activation_bytes = in.activation_bytes;
  const int64_t last = int64_t(in.block_bytes.size()) - 1;
  p.home.assign(in.block_bytes.size(), Tier::Gpu);
  uint64_t fixed = in.block_bytes.front() + in.block_bytes.back(), layers = 0, slot = 0;
  std::vector<int64_t> layer_ids;
  for (int64_t b = 1; b < last; ++b) {
    layers += in.block_bytes[size_t(b)];
    slot = std::max(slot, round_up(in.block_bytes[size_t(b)], 4096));
    layer_ids.push_back(b);
  }
  p.slot_bytes = slot;
  const uint64_t gpu = *in.budgets.gpu;
  if (fixed + layers <= gpu) {
    p.gpu_bytes = fixed + layers;
    return p;
  }
  uint64_t avail = gpu > fixed ? gpu - fixed : 0;
  p.gpu_slots = split_layers(p, layer_ids, avail, slot, in.prefetch + 2, Tier::Gpu, Tier::Cpu);
  if (p.gpu_slots == 0)
    fail(
        "--max-memory gpu={}: too small: blocks 0 and {} need {} on the GPU and a streamed layer "
        "one GPU slot ({}); give at least gpu={}",
        format_bytes(gpu), last, format_bytes(fixed), format_bytes(slot), at_least(fixed + slot));
  p.gpu_bytes = p.bytes_of(Tier::Gpu) + uint64_t(p.gpu_slots) * slot;
  // Layers that do not fit on the GPU live in RAM while the cpu budget allows, else on disk.
  std::vector<int64_t> off_gpu;
  for (int64_t b : layer_ids)
    if (p.home[size_t(b)] == Tier::Cpu) off_gpu.push_back(b);
  uint64_t in_ram = 0;
  for (int64_t b : off_gpu) in_ram += p.block_bytes[size_t(b)];
  if (in.budgets.cpu && in_ram > *in.budgets.cpu) {
    p.ram_slots =
        split_layers(p, off_gpu, *in.budgets.cpu, slot, in.prefetch + 2, Tier::Cpu, Tier::Disk);
    if (p.ram_slots == 0)
      fail("--max-memory cpu={}: too small to stage a layer streamed from disk ({})",
           format_bytes(*in.budgets.cpu), format_bytes(slot));
  }
  p.prefetch = std::min<int64_t>(in.prefetch, std::max<int64_t>(p.gpu_slots, p.ram_slots) - 1);
  p.ram_bytes = p.bytes_of(Tier::Cpu) + uint64_t(p.ram_slots) * slot;
  p.disk_bytes = p.bytes_of(Tier::Disk);
  return p;
}

}  // namespace

Plan make_plan(const PlanInput& in) {
  ZOFT_CHECK(in.block_bytes.size() >= 2, "a decoder has at least two blocks, got {}",
             in.block_bytes.size());
  if (in.prefetch < 0) fail("prefetch must be >= 0, got {}", in.prefetch);
  if (!(in.bus_gbps > 0)) fail("host-device bandwidth must be > 0 GB/s, got {}", in.bus_gbps);
  if (!in.budgets.gpu) return cpu_plan(in);
  Plan g = gpu_plan(in);
  if (in.cuda) return g;
  // Accepted and planned, but this build computes on the CPU: say what the GPU plan would be.
  PlanInput cpu_only = in;
  cpu_only.budgets.gpu.reset();
  Plan p = cpu_plan(cpu_only);
  p.budgets = in.budgets;
  p.note =
      "gpu budget planned but not executed (this build has no CUDA backend); computing on "
      "the cpu with the cpu budget. The GPU plan would be:\n" +
      describe(g);
  return p;
}

std::string describe(const Plan& p, double read_mbps, double write_mbps) {
  const int64_t last = int64_t(p.home.size()) - 1;
  std::string budget;
  if (p.budgets.gpu) budget += "gpu=" + format_bytes(*p.budgets.gpu);
  if (p.budgets.cpu)
    budget += std::string(budget.empty() ? "" : ",") + "cpu=" + format_bytes(*p.budgets.cpu);
  std::string out = fmt::format("placement plan: compute on {}, budget {}\n",
                                p.compute_on_gpu ? "gpu" : "cpu", budget.empty() ? "none" : budget);
  const Tier compute = p.compute_on_gpu ? Tier::Gpu : Tier::Cpu;
  for (Tier tier : {Tier::Gpu, Tier::Cpu, Tier::Disk}) {
    std::vector<int64_t> blocks;
    for (int64_t b = 0; b <= last; ++b)
      if (p.home[size_t(b)] == tier) blocks.push_back(b);
    if (blocks.empty()) continue;
    uint64_t bytes = p.bytes_of(tier);
    if (tier == compute)
      out += fmt::format(
          "  resident on {}: blocks {} ({}; block 0 = embeddings and {} = final norm "
          "+ LM head are always resident)\n",
          tier_name(tier), ranges(blocks), format_bytes(bytes), last);
    else
      out += fmt::format("  streamed from {}: blocks {} ({} blocks, {})\n", tier_name(tier),
                         ranges(blocks), blocks.size(), format_bytes(bytes));
  }
  if (p.gpu_slots)
    out += fmt::format("  gpu slots: {} x {}, prefetch depth {}\n", p.gpu_slots,
                       format_bytes(p.slot_bytes), std::min<int64_t>(p.prefetch, p.gpu_slots - 1));
  if (p.ram_slots)
    out += fmt::format("  ram slots: {} x {}, prefetch depth {}\n", p.ram_slots,
                       format_bytes(p.slot_bytes), p.prefetch);
  out += fmt::format("  weights in ram {}", format_bytes(p.ram_bytes));
  if (p.compute_on_gpu) out += fmt::format(", on gpu {}", format_bytes(p.gpu_bytes));
  if (p.disk_bytes) out += fmt::format(", offload file {}", format_bytes(p.disk_bytes));
  if (p.activation_bytes)
    out += fmt::format("; activations ~{} (outside the budget)", format_bytes(p.activation_bytes));
  out += "\n";
  if (p.streams_from_disk())
    out += fmt::format(
        "  per training step: {} read + {} written on disk; per forward (eval, "
        "generate): {} read\n",
        format_bytes(p.disk_read_per_step()), format_bytes(p.disk_write_per_step()),
        format_bytes(p.disk_read_per_step()));
  if (p.bus_per_step())
    out += fmt::format(
        "  host-device bus: per training step {} up + {} down, per forward {} up; at {:.0f} GB/s "
        "each way -> floor {:.3f} s per training step from the bus alone ({:.3f} s per "
        "forward)\n",
        format_bytes(p.bus_per_step()), format_bytes(p.bus_per_step()),
        format_bytes(p.bus_per_step()), p.bus_gbps, p.bus_floor_seconds(), p.bus_floor_seconds());
  if (p.compute_on_gpu && p.streams_from_disk())
    out += fmt::format("  disk blocks pass through the {} ram slots as pinned staging buffers\n",
                       p.ram_slots);
  if (p.streams_from_disk() && read_mbps > 0 && write_mbps > 0) {
    double floor = double(p.disk_read_per_step()) / (read_mbps * 1e6) +
                   double(p.disk_write_per_step()) / (write_mbps * 1e6);
    out += fmt::format(
        "  disk measured: read {:.0f} MB/s, write {:.0f} MB/s -> floor {:.3f} s per "
        "training step from the disk alone ({:.3f} s per forward)\n",
        read_mbps, write_mbps, floor, double(p.disk_read_per_step()) / (read_mbps * 1e6));
  }
  if (!p.note.empty()) out += "  note: " + p.note;
  if (!out.empty() && out.back() != '\n') out += '\n';
  return out;
}

}  // namespace zoft::runtime
