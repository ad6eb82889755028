// The placement planner: budgets parse as Accelerate writes them, blocks 0 and L+1 stay
// resident, layers stream through slots when the budget says so, and too small a budget is a
// clear error that names the smallest one that works.
#include "runtime/plan.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace zoft::runtime {
namespace {

constexpr uint64_t MiB = uint64_t(1) << 20;

TEST(Budget, ParsesSizesLikeAccelerate) {
  EXPECT_EQ(parse_bytes("20GiB", "x"), 20ull << 30);
  EXPECT_EQ(parse_bytes("100MiB", "x"), 100ull << 20);
  EXPECT_EQ(parse_bytes("1.5GB", "x"), 1500000000ull);
  EXPECT_EQ(parse_bytes(" 4096 ", "x"), 4096ull);
  EXPECT_EQ(parse_bytes("2kb", "x"), 2000ull);
  EXPECT_EQ(parse_bytes("3 KiB", "x"), 3072ull);
  for (const char* bad : {"", "GiB", "12 parsecs", "-3GiB", "1e3", "0"})
    EXPECT_THROW(parse_bytes(bad, "x"), Error) << bad;
}

TEST(Budget, ParsesTiers) {
  Budgets b = parse_max_memory("gpu=8GiB, cpu=20GiB");
  ASSERT_TRUE(b.gpu && b.cpu);
  EXPECT_EQ(*b.gpu, 8ull << 30);
  EXPECT_EQ(*b.cpu, 20ull << 30);
  EXPECT_FALSE(parse_max_memory("cpu=1GiB").gpu);
  EXPECT_TRUE(parse_max_memory("cuda=1GiB").gpu);
  for (const char* bad : {"", "cpu", "cpu=1GiB,cpu=2GiB", "tpu=1GiB", "cpu=lots"})
    EXPECT_THROW(parse_max_memory(bad), Error) << bad;
  try {
    parse_max_memory("ram=3GiB");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("use cpu and gpu"), std::string::npos) << e.what();
  }
}

// 16 layers of 5 MiB between a 16 MiB embedding block and a 1 MiB head block.
PlanInput sixteen_layers(const char* budget, int64_t prefetch = 1) {
  PlanInput in;
  in.block_bytes.push_back(16 * MiB);
  for (int i = 0; i < 16; ++i) in.block_bytes.push_back(5 * MiB);
  in.block_bytes.push_back(1 * MiB);
  in.budgets = parse_max_memory(budget);
  in.prefetch = prefetch;
  return in;
}

TEST(Planner, EverythingResidentWhenItFits) {
  Plan p = make_plan(sixteen_layers("cpu=97MiB"));
  EXPECT_FALSE(p.streams_from_disk());
  EXPECT_EQ(p.count(Tier::Cpu), 18);
  EXPECT_EQ(p.ram_bytes, 97 * MiB);
  EXPECT_FALSE(make_plan(sixteen_layers("cpu=1TiB")).streams_from_disk());
}

TEST(Planner, StreamsLayersThroughSlotsWithinTheBudget) {
  Plan p = make_plan(sixteen_layers("cpu=40MiB", 1));
  // 17 MiB for blocks 0 and 17, 3 slots (prefetch 1 + the computing one + one writing back),
  // then as many resident layers as fit: (40 - 17 - 15) / 5 = 1.
  EXPECT_EQ(p.home.front(), Tier::Cpu);
  EXPECT_EQ(p.home.back(), Tier::Cpu);
  EXPECT_EQ(p.ram_slots, 3);
  EXPECT_EQ(p.prefetch, 1);
  EXPECT_EQ(p.count(Tier::Cpu), 3);
  EXPECT_EQ(p.count(Tier::Disk), 15);
  EXPECT_EQ(p.home[1], Tier::Cpu);  // resident layers come first, streamed ones back to back
  EXPECT_LE(p.ram_bytes, 40 * MiB);
  EXPECT_EQ(p.disk_read_per_step(), 15 * 5 * MiB);
  EXPECT_EQ(p.disk_write_per_step(), 15 * 5 * MiB);
  std::string text = describe(p, 500, 250);
  for (const char* part : {"resident on cpu: blocks 0-1, 17", "streamed from disk: blocks 2-16",
                           "ram slots: 3 x 5.00 MiB, prefetch depth 1", "read + ", "floor"})
    EXPECT_NE(text.find(part), std::string::npos) << part << "\n" << text;
}

TEST(Planner, ShrinksSlotsToTheBudgetAndExplainsWhenNothingFits) {
  Plan p = make_plan(sixteen_layers("cpu=28MiB", 4));
  EXPECT_EQ(p.ram_slots, 2);  // (28 - 17) / 5
  EXPECT_EQ(p.prefetch, 1);
  EXPECT_EQ(p.count(Tier::Disk), 16);
  try {
    make_plan(sixteen_layers("cpu=20MiB"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("give at least cpu=22.00MiB"), std::string::npos)
        << e.what();
  }
}

TEST(Planner, GpuBudgetIsPlannedButRunsOnTheCpuWithoutCuda) {
  Plan p = make_plan(sixteen_layers("gpu=40MiB,cpu=45MiB"));
  EXPECT_FALSE(p.compute_on_gpu);
  EXPECT_TRUE(p.streams_from_disk());
  EXPECT_NE(p.note.find("not executed"), std::string::npos);
  EXPECT_NE(p.note.find("compute on gpu"), std::string::npos) << p.note;

  PlanInput in = sixteen_layers("gpu=40MiB,cpu=45MiB");
  in.cuda = true;
  Plan g = make_plan(in);
  EXPECT_TRUE(g.compute_on_gpu);
  EXPECT_EQ(g.home.front(), Tier::Gpu);
  EXPECT_EQ(g.gpu_slots, 3);
  EXPECT_EQ(g.count(Tier::Gpu), 3);  // blocks 0, 17 and one layer
  // The other 15 layers: 6 in RAM, and 3 RAM slots staging the 9 that stream from disk.
  EXPECT_EQ(g.count(Tier::Cpu), 6);
  EXPECT_EQ(g.count(Tier::Disk), 9);
  EXPECT_LE(g.ram_bytes, 45 * MiB);
  EXPECT_EQ(g.bus_per_step(), 15 * 5 * MiB);
}

// OPT-13B-like in bf16: 40 layers of 600 MiB, a 250 MiB tied embedding block, a tiny head.
PlanInput opt13b_like(const char* budget) {
  PlanInput in;
  in.block_bytes.push_back(250 * MiB);
  for (int i = 0; i < 40; ++i) in.block_bytes.push_back(600 * MiB);
  in.block_bytes.push_back(1 * MiB);
  in.budgets = parse_max_memory(budget);
  in.prefetch = 2;
  in.cuda = true;
  return in;
}

TEST(PlannerGpuTier, ResidentOnGpuThenRamThenDisk) {
  Plan p = make_plan(opt13b_like("gpu=8GiB,cpu=12GiB"));
  ASSERT_TRUE(p.compute_on_gpu);
  // GPU: blocks 0 and 41 (251 MiB), 4 slots (prefetch 2 + computing + writing back) = 2400 MiB,
  // then (8192 - 251 - 2400) / 600 = 9 resident layers.
  EXPECT_EQ(p.gpu_slots, 4);
  EXPECT_EQ(p.count(Tier::Gpu), 11);
  EXPECT_EQ(p.home[1], Tier::Gpu);
  EXPECT_EQ(p.home[9], Tier::Gpu);
  EXPECT_EQ(p.home[10], Tier::Cpu);
  // RAM: 4 pinned staging slots (2400 MiB), then (12288 - 2400) / 600 = 16 layers; 15 on disk.
  EXPECT_EQ(p.ram_slots, 4);
  EXPECT_EQ(p.count(Tier::Cpu), 16);
  EXPECT_EQ(p.count(Tier::Disk), 15);
  EXPECT_EQ(p.home.back(), Tier::Gpu);
  EXPECT_LE(p.gpu_bytes, 8192 * MiB);
  EXPECT_LE(p.ram_bytes, 12288 * MiB);
  EXPECT_EQ(p.bus_per_step(), 31 * 600 * MiB);
  EXPECT_EQ(p.disk_read_per_step(), 15 * 600 * MiB);
  // 31 x 600 MiB over 50 GB/s: 0.390 s per step.
  EXPECT_NEAR(p.bus_floor_seconds(), 31.0 * 600 * MiB / 50e9, 1e-12);
  std::string text = describe(p, 2000, 1500);
  for (const char* part :
       {"compute on gpu", "resident on gpu: blocks 0-9, 41", "streamed from cpu: blocks 10-25",
        "streamed from disk: blocks 26-40", "gpu slots: 4 x 600.0 MiB, prefetch depth 2",
        "at 50 GB/s each way -> floor 0.390 s per training step", "pinned staging", "floor"})
    EXPECT_NE(text.find(part), std::string::npos) << part << "\n" << text;
}

TEST(PlannerGpuTier, RamHoldsTheRestWhenItFitsAndBandwidthIsAParameter) {
  PlanInput in = opt13b_like("gpu=8GiB,cpu=20GiB");
  in.bus_gbps = 25;
  Plan p = make_plan(in);
  EXPECT_EQ(p.count(Tier::Cpu), 31);
  EXPECT_EQ(p.count(Tier::Disk), 0);
  EXPECT_EQ(p.ram_slots, 0);
  EXPECT_NEAR(p.bus_floor_seconds(), 31.0 * 600 * MiB / 25e9, 1e-12);
  EXPECT_NE(describe(p).find("at 25 GB/s"), std::string::npos) << describe(p);
  in.bus_gbps = 0;
  EXPECT_THROW(make_plan(in), Error);
}

TEST(PlannerGpuTier, EverythingOnTheGpuMovesNothing) {
  Plan p = make_plan(opt13b_like("gpu=80GiB"));
  EXPECT_EQ(p.count(Tier::Gpu), 42);
  EXPECT_EQ(p.gpu_slots, 0);
  EXPECT_EQ(p.bus_per_step(), 0u);
  EXPECT_EQ(describe(p).find("host-device bus"), std::string::npos);
}

TEST(PlannerGpuTier, TooSmallAGpuBudgetSaysWhatWorks) {
  try {
    make_plan(opt13b_like("gpu=800MiB,cpu=64GiB"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("give at least gpu=851.00MiB"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace zoft::runtime
