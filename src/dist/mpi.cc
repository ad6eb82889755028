// The MPI communicator (Open MPI 4.1 from Debian).
//
// Every collective is started non-blocking and then polled, for two reasons:
//  - a watchdog: when the other ranks do not answer within ZOFT_DIST_TIMEOUT seconds (default
//    900: long enough for rank 0 to write a large checkpoint while the others wait) this rank
//    says so and aborts the job, instead of hanging forever when a launcher does not notice a
//    dead or stuck rank (srun without --kill-on-bad-exit). Open MPI's mpirun itself kills the
//    job within a second when a rank dies, with its own message naming the rank;
//  - errors: the communicator returns errors (MPI_ERRORS_RETURN) instead of MPI's default of
//    killing the process silently, so a failed collective gets a message saying what failed.
// Polling sleeps briefly between tests: ranks oversubscribing cores (CI, laptops) then leave
// the CPU to the rank still computing instead of spinning against it.
#if ZOFT_MPI

// The C API only: Open MPI's mpi.h otherwise pulls in the removed C++ bindings (libmpi_cxx).
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "core/error.h"
#include "dist/communicator.h"

namespace zoft::dist {

namespace {

using Clock = std::chrono::steady_clock;

std::string mpi_error_text(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int n = 0;
  if (MPI_Error_string(code, text, &n) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(text, size_t(n));
}

void finalize_at_exit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

int checked_count(size_t bytes, const char* what) {
  ZOFT_CHECK(bytes <= size_t(INT_MAX), "{}: {} bytes is more than one MPI message holds", what,
             bytes);
  return int(bytes);
}

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(const Launch& launch) {
    backend_ = "mpi";
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;
      // Only the main thread calls MPI (the thread pool never does).
      if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        fail("MPI_Init failed (launched by {})", launch.launched() ? launch.launcher : "nothing");
      std::atexit(finalize_at_exit);
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_dup(MPI_COMM_WORLD, &comm_);  // our own: no clash with other MPI users' messages
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    MPI_Comm node;
    MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &local_rank_);
    MPI_Comm_size(node, &local_size_);
    MPI_Comm_free(&node);
    // Another MPI's launcher (MPICH's mpiexec) starts N singletons that each see one rank:
    // they must not train side by side into one output directory.
    if (launch.size > 0 && launch.size != size_)
      fail(
          "{} started {} ranks but MPI sees {}: zoft is built with Open MPI, launch it with Open "
          "MPI's mpirun or with srun --mpi=pmix",
          launch.launcher, launch.size, size_);
    if (const char* t = std::getenv("ZOFT_DIST_TIMEOUT")) timeout_s_ = std::atof(t);
    if (!(timeout_s_ > 0)) timeout_s_ = 900;
  }

  void barrier() override {
    MPI_Request req;
    check(MPI_Ibarrier(comm_, &req), "barrier");
    wait(req, "barrier");
  }

  void broadcast(void* data, size_t bytes, int root) override {
    MPI_Request req;
    check(MPI_Ibcast(data, checked_count(bytes, "broadcast"), MPI_BYTE, root, comm_, &req),
          "broadcast");
    wait(req, "broadcast");
  }

  void all_gather(const void* mine, void* out, const std::vector<size_t>& counts) override {
    ZOFT_CHECK(counts.size() == size_t(size_), "all_gather: {} counts for {} ranks", counts.size(),
               size_);
    std::vector<int> n(counts.size()), offset(counts.size());
    size_t total = 0;
    for (size_t r = 0; r < counts.size(); ++r) {
      n[r] = checked_count(counts[r], "all_gather");
      offset[r] = checked_count(total, "all_gather");
      total += counts[r];
    }
    checked_count(total, "all_gather");
    MPI_Request req;
    check(MPI_Iallgatherv(mine, n[size_t(rank_)], MPI_BYTE, out, n.data(), offset.data(), MPI_BYTE,
                          comm_, &req),
          "all_gather");
    wait(req, "all_gather");
  }

  void all_reduce_sum(int64_t* values, size_t n) override {
    MPI_Request req;
    check(MPI_Iallreduce(MPI_IN_PLACE, values, checked_count(n, "all_reduce"), MPI_INT64_T, MPI_SUM,
                         comm_, &req),
          "all_reduce");
    wait(req, "all_reduce");
  }

  [[noreturn]] void abort(const std::string& message) override {
    std::fprintf(stderr, "zoft: %s\n", message.c_str());
    std::fflush(stderr);
    MPI_Abort(comm_, 1);
    _exit(1);  // MPI_Abort does not return; in case it does
  }

 private:
  void check(int rc, const char* what) {
    if (rc != MPI_SUCCESS)
      abort(fmt::format("rank {} of {}: {} failed: {} (did another rank die?); stopping the job",
                        rank_, size_, what, mpi_error_text(rc)));
  }

  void wait(MPI_Request& req, const char* what) {
    const auto start = Clock::now();
    for (int polls = 0;; ++polls) {
      int done = 0;
      check(MPI_Test(&req, &done, MPI_STATUS_IGNORE), what);
      if (done) break;
      if (polls < 256) continue;  // the usual case: the others are microseconds away
      std::this_thread::sleep_for(std::chrono::microseconds(50));
      if ((polls & 1023) == 0) {
        double waited = std::chrono::duration<double>(Clock::now() - start).count();
        if (waited > timeout_s_)
          abort(fmt::format(
              "rank {} of {}: no answer from the other ranks for {:.0f} s in {} (a rank "
              "died or hangs; ZOFT_DIST_TIMEOUT sets the limit); stopping the job",
              rank_, size_, waited, what));
      }
    }
    comm_seconds_ += std::chrono::duration<double>(Clock::now() - start).count();
    ++collectives_;
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  double timeout_s_ = 900;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi(const Launch& launch) {
  return std::make_unique<MpiCommunicator>(launch);
}

}  // namespace zoft::dist

#endif  // ZOFT_MPI
