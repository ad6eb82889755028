// The dist layer without MPI: launch detection from the environment, the one-process
// communicator, splits and gathers, start-up checks.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "dist/communicator.h"
#include "dist/startup.h"

namespace zoft::dist {
namespace {

Launch launch_with(const std::map<std::string, std::string>& env) {
  return detect_launch([&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

TEST(Launch, NoLauncherIsOneProcess) {
  Launch l = launch_with({{"SLURM_NTASKS", "4"}, {"SLURM_PROCID", "0"}});  // a batch script itself
  EXPECT_FALSE(l.launched());
  EXPECT_EQ(l.size, 1);
  EXPECT_EQ(l.rank, 0);
}

TEST(Launch, OpenMpiMpirun) {
  Launch l = launch_with({{"OMPI_COMM_WORLD_SIZE", "4"},
                          {"OMPI_COMM_WORLD_RANK", "3"},
                          {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                          {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"},
                          {"SLURM_STEP_NUM_TASKS", "9"}});  // mpirun inside an allocation wins
  EXPECT_EQ(l.launcher, "mpirun");
  EXPECT_EQ(l.size, 4);
  EXPECT_EQ(l.rank, 3);
  EXPECT_EQ(l.local_rank, 1);
  EXPECT_EQ(l.local_size, 2);
}

TEST(Launch, Srun) {
  Launch l = launch_with({{"SLURM_STEP_NUM_TASKS", "8"},
                          {"SLURM_PROCID", "5"},
                          {"SLURM_LOCALID", "1"},
                          {"PMIX_RANK", "5"}});
  EXPECT_EQ(l.launcher, "srun");
  EXPECT_EQ(l.size, 8);
  EXPECT_EQ(l.rank, 5);
  EXPECT_EQ(l.local_rank, 1);
  EXPECT_EQ(l.local_size, -1);  // MPI works it out
}

TEST(Launch, PmiAndGarbage) {
  Launch l = launch_with({{"PMI_RANK", "2"}, {"PMI_SIZE", "x3"}});
  EXPECT_EQ(l.launcher, "pmi");
  EXPECT_EQ(l.rank, 2);
  EXPECT_EQ(l.size, -1);  // not a number: unknown, MPI decides
  EXPECT_EQ(launch_with({{"PMIX_RANK", "0"}}).launcher, "pmix");
}

TEST(Split, EvenAndContiguous) {
  EXPECT_EQ(even_split(6, 3), (std::vector<int64_t>{0, 2, 4, 6}));
  EXPECT_EQ(even_split(7, 3), (std::vector<int64_t>{0, 2, 4, 7}));
  EXPECT_EQ(even_split(2, 4), (std::vector<int64_t>{0, 0, 1, 1, 2}));
  EXPECT_THROW(even_split(3, 0), Error);
}

TEST(Single, CollectivesAreCopies) {
  auto comm = make_single();
  EXPECT_EQ(comm->size(), 1);
  EXPECT_TRUE(comm->is_root());
  EXPECT_EQ(comm->backend(), "single");
  std::vector<float> mine = {1, 2, 3, 4, 5, 6}, all;
  all_gather_rows(*comm, mine, {0, 2}, 3, all);
  EXPECT_EQ(all, mine);
  EXPECT_THROW(all_gather_rows(*comm, mine, {0, 1}, 3, all), Error);  // 2 rows' worth for 1 row
  EXPECT_EQ(broadcast_string(*comm, "checkpoint-7", 0), "checkpoint-7");
  int64_t counts[2] = {3, 4};
  comm->all_reduce_sum(counts, 2);
  EXPECT_EQ(counts[1], 4);
  EXPECT_THROW(comm->abort("stop"), Error);
  EXPECT_EQ(threads_per_rank(*comm, 3), 3);
  EXPECT_GE(threads_per_rank(*comm, 0), 1);
}

TEST(Single, WorldWithoutLauncherIsOneProcess) {
  // The test runs without mpirun: no MPI, whatever the build has.
  EXPECT_EQ(world("none").backend(), "single");
  EXPECT_EQ(&world("none"), &world("none"));
}

TEST(Startup, OneProcessPassesChecksAndRethrows) {
  auto comm = make_single();
  Startup startup(*comm);
  EXPECT_EQ(startup.check("recipe", 42, "payload"), "payload");
  EXPECT_FALSE(startup.done());
  startup.check("data", 7, {}, true);
  EXPECT_TRUE(startup.done());
  // One process: errors keep their type and message (the CLI prints them).
  EXPECT_THROW(run(*comm, [](Startup&) -> int { throw std::runtime_error("boom"); }),
               std::runtime_error);
  EXPECT_EQ(run(*comm, [](Startup& s) { return s.check("x", 1, "ok"); }), "ok");
}

TEST(Fingerprint, DependsOnEveryByte) {
  EXPECT_EQ(Fingerprint().add("abc").value(), Fingerprint().add("abc").value());
  EXPECT_NE(Fingerprint().add("abc").value(), Fingerprint().add("abd").value());
  EXPECT_NE(Fingerprint().add(int64_t(1)).value(), Fingerprint().add(int64_t(2)).value());
  EXPECT_EQ(Fingerprint().value(), 0xcbf29ce484222325ull);  // FNV-1a offset basis
}

}  // namespace
}  // namespace zoft::dist
