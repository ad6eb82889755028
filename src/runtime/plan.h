// Placement from memory budgets (DESIGN decision 5), as Accelerate's max_memory:
// `--max-memory gpu=8GiB,cpu=20GiB --offload-dir DIR`. The planner decides, per block of the
// decoder (0 = embeddings, 1..L = layers, L+1 = final norm + LM head), where its weights live
// between uses: resident on the GPU, resident in CPU RAM, or in the offload file on disk; and
// how many reusable slots the streamed blocks pass through. It never moves bytes itself.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace zoft::runtime {

// Budgets per tier; an absent tier is unlimited (cpu) or unused (gpu).
struct Budgets {
  std::optional<uint64_t> gpu, cpu;
  bool empty() const { return !gpu && !cpu; }
};

// "20GiB", "100MiB", "1.5GB", "4096" (bytes). GB/MB/KB are powers of 1000 and GiB/MiB/KiB of
// 1024, as in Accelerate. Throws Error naming `what` on anything else.
uint64_t parse_bytes(std::string_view text, const std::string& what);
// "cpu=20GiB,gpu=8GiB" (gpu may also be spelled cuda or 0). Throws Error saying the format.
Budgets parse_max_memory(std::string_view text);
std::string format_bytes(uint64_t bytes);  // "1.50 GiB", "312.0 MiB", "4.0 KiB", "12 B"

enum class Tier : uint8_t { Gpu, Cpu, Disk };
const char* tier_name(Tier tier);

struct PlanInput {
  std::vector<uint64_t> block_bytes;  // parameter bytes of each block as stored when resident
  Budgets budgets;
  int64_t prefetch = 2;           // blocks read ahead while one computes
  bool cuda = false;              // this build can compute on a GPU
  uint64_t activation_bytes = 0;  // estimate, reported; not part of any budget
  // Host-device bandwidth each way in GB/s (1e9 B/s), for the floor time the plan prints:
  // ~50 for PCIe 5 x16 (H100 PCIe / SXM host link), ~25 for PCIe 4.
  double bus_gbps = 50.0;
};

struct Plan {
  bool compute_on_gpu = false;
  std::vector<Tier> home;  // per block: where its weights live between uses
  std::vector<uint64_t> block_bytes;
  // Streamed blocks pass through `slots` reusable buffers of `slot_bytes` each: RAM slots for
  // Disk blocks (both computes), GPU slots for Cpu/Disk blocks when computing on the GPU.
  int64_t ram_slots = 0, gpu_slots = 0;
  uint64_t slot_bytes = 0;
  int64_t prefetch = 0;  // effective read-ahead depth (at most ram_slots - 1)
  uint64_t ram_bytes = 0, gpu_bytes = 0, disk_bytes = 0;  // resident + slots, per tier
  uint64_t activation_bytes = 0;
  std::string note;  // e.g. why a GPU plan is not executed
  Budgets budgets;
  double bus_gbps = 50.0;  // from PlanInput

  int64_t count(Tier tier) const;
  bool streams_from_disk() const { return count(Tier::Disk) > 0; }
  uint64_t bytes_of(Tier tier) const;
  // Bytes over the disk per training step: every Disk block is read once and written back once.
  uint64_t disk_read_per_step() const { return bytes_of(Tier::Disk); }
  uint64_t disk_write_per_step() const { return bytes_of(Tier::Disk); }
  // Bytes over the host-device bus per training step when computing on the GPU, each way:
  // every streamed block goes up once and comes back once (ZO2). A forward (eval, generate)
  // moves the same bytes up and nothing down.
  uint64_t bus_per_step() const {
    return compute_on_gpu ? bytes_of(Tier::Cpu) + bytes_of(Tier::Disk) : 0;
  }
  // The time the bus alone imposes on a training step: up and down overlap (PCIe is full
  // duplex), so one direction's bytes over the bandwidth. Equal to one forward's floor.
  double bus_floor_seconds() const { return double(bus_per_step()) / (bus_gbps * 1e9); }
};

// Blocks 0 and L+1 (the embedding table and LM head, used at both ends of every forward) are
// always resident on the compute device; layers are made resident in order while the budget
// allows after reserving the slots, the rest stream. Throws Error when even one slot does not
// fit, saying the smallest budget that works.
Plan make_plan(const PlanInput& input);

// Human-readable plan: tiers, block ranges, bytes, slots, bytes moved per step and, when the
// disk bandwidth is known (MB/s > 0), the floor time per step that the disk alone imposes.
std::string describe(const Plan& plan, double disk_read_mbps = 0, double disk_write_mbps = 0);

}  // namespace zoft::runtime
