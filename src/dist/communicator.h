// The ranks of a job and the few collectives ZO data parallelism needs (docs/dist.md).
//
// A ZO step exchanges no gradients and no weights: every rank draws the same z, runs its shard
// of the global batch, and the ranks all-gather per-token losses (a few KB), from which every
// rank computes the batch loss exactly as one process would. So there is deliberately no float
// all-reduce here: a sum of partial float sums depends on the order of the ranks' arrival and
// would break "N ranks == 1 process, bit for bit". Integer sums (eval counts) are exact.
//
// Two implementations: one process (no MPI at all), and MPI (Open MPI from Debian), chosen
// from the environment that mpirun or srun leaves, so `mpirun -np 4 zoft train R.yaml` and
// `srun zoft train R.yaml` need no flag.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace zoft::dist {

// What the launcher's environment says about this process. Parsed without MPI, so it can be
// tested and reported before MPI starts.
struct Launch {
  std::string launcher;                // "" (none), "mpirun", "srun", "pmix", "pmi"
  int rank = 0, size = 1;              // -1 where the environment does not say (MPI knows)
  int local_rank = 0, local_size = 1;  // among the ranks of this node; -1 where unknown
  bool launched() const { return !launcher.empty(); }
};
using GetEnv = std::function<const char*(const char*)>;
Launch detect_launch(const GetEnv& getenv);
Launch detect_launch();  // from this process's environment

class Communicator {
 public:
  virtual ~Communicator() = default;

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_root() const { return rank_ == 0; }
  // Rank among the ranks on this node and how many share it: picks the GPU (local_rank % GPUs)
  // and the threads per rank.
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }
  const std::string& backend() const { return backend_; }  // "single" or "mpi"

  // Collectives: every rank calls the same ones in the same order.
  virtual void barrier() = 0;
  virtual void broadcast(void* data, size_t bytes, int root) = 0;
  // out = every rank's bytes concatenated in rank order; counts[r] = rank r's byte count (every
  // rank passes the same counts; its own is counts[rank()]).
  virtual void all_gather(const void* mine, void* out, const std::vector<size_t>& counts) = 0;
  virtual void all_reduce_sum(int64_t* values, size_t n) = 0;
  // Ends every rank of the job now (after printing `message` on this rank's stderr). For an
  // error on one rank while the others wait in a collective; never returns.
  [[noreturn]] virtual void abort(const std::string& message) = 0;

  // Wall time spent inside collectives (including waiting for slower ranks) and their count.
  double comm_seconds() const { return comm_seconds_; }
  int64_t collectives() const { return collectives_; }

 protected:
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  std::string backend_;
  double comm_seconds_ = 0;
  int64_t collectives_ = 0;
};

// One process: collectives are copies.
std::unique_ptr<Communicator> make_single();

// True when this build has MPI (CMake found it).
bool mpi_available();

// The job's communicator, made on first use and kept for the life of the process (MPI can be
// initialised once only; it is finalised at exit). MPI when the environment shows a launch by
// mpirun / srun with more than one rank or `backend` is "mpi", one process otherwise. Throws
// zoft::Error when MPI is needed and this build has none.
Communicator& world(const std::string& backend = "none");

// Helpers on top of the collectives.
std::string broadcast_string(Communicator& comm, std::string text, int root);
// Boundaries of an even contiguous split of n items over `parts`: part r is [b[r], b[r+1]).
std::vector<int64_t> even_split(int64_t n, int parts);
// Rank r holds rows [bounds[r], bounds[r+1]) of `row_len` floats each; `all` receives every
// rank's rows in order, i.e. exactly the array one process would have computed.
void all_gather_rows(Communicator& comm, const std::vector<float>& mine,
                     const std::vector<int64_t>& bounds, int64_t row_len, std::vector<float>& all);
// data[i] = the sum over ranks of every rank's data[i], added in rank order (0 + 1 + 2 ...), so
// every rank gets the same bits and a rerun with the same ranks the same result.
void all_reduce_sum_in_rank_order(Communicator& comm, float* data, size_t n);
void all_reduce_sum_in_rank_order(Communicator& comm, double* data, size_t n);
// Threads for this rank: `requested` when set, else the node's cores shared by its ranks.
int threads_per_rank(const Communicator& comm, int requested);

}  // namespace zoft::dist
