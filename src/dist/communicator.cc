#include "dist/communicator.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "core/error.h"
#include "core/thread_pool.h"

namespace zoft::dist {

#if ZOFT_MPI
std::unique_ptr<Communicator> make_mpi(const Launch& launch);  // mpi.cc
bool mpi_available() {
  return true;
}
#else
bool mpi_available() {
  return false;
}
#endif

namespace {

// An integer from the environment, or `otherwise` when unset or not a number.
int env_int(const GetEnv& getenv, const char* name, int otherwise) {
  const char* v = getenv(name);
  if (!v || !*v) return otherwise;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  return *end == '\0' && x >= 0 && x < (1L << 30) ? int(x) : otherwise;
}

class SingleCommunicator final : public Communicator {
 public:
  SingleCommunicator() { backend_ = "single"; }
  void barrier() override {}
  void broadcast(void*, size_t, int root) override {
    ZOFT_CHECK(root == 0, "broadcast from rank {} in a one-process job", root);
  }
  void all_gather(const void* mine, void* out, const std::vector<size_t>& counts) override {
    ZOFT_CHECK(counts.size() == 1, "all_gather: {} counts in a one-process job", counts.size());
    if (counts[0]) std::memmove(out, mine, counts[0]);
  }
  void all_reduce_sum(int64_t*, size_t) override {}
  [[noreturn]] void abort(const std::string& message) override { throw Error(message); }
};

}  // namespace

Launch detect_launch(const GetEnv& getenv) {
  Launch l;
  if (getenv("OMPI_COMM_WORLD_SIZE")) {  // Open MPI's mpirun (also inside a SLURM allocation)
    l.launcher = "mpirun";
    l.rank = env_int(getenv, "OMPI_COMM_WORLD_RANK", -1);
    l.size = env_int(getenv, "OMPI_COMM_WORLD_SIZE", -1);
    l.local_rank = env_int(getenv, "OMPI_COMM_WORLD_LOCAL_RANK", -1);
    l.local_size = env_int(getenv, "OMPI_COMM_WORLD_LOCAL_SIZE", -1);
  } else if (getenv("SLURM_STEP_NUM_TASKS")) {
    // srun sets the step's variables in each task; a batch script alone has only SLURM_NTASKS,
    // so running `zoft train` directly in one is (correctly) one process.
    l.launcher = "srun";
    l.rank = env_int(getenv, "SLURM_PROCID", -1);
    l.size = env_int(getenv, "SLURM_STEP_NUM_TASKS", -1);
    l.local_rank = env_int(getenv, "SLURM_LOCALID", -1);
    l.local_size = -1;  // SLURM_STEP_TASKS_PER_NODE is a list; MPI works it out
  } else if (getenv("PMIX_RANK")) {
    l.launcher = "pmix";
    l.rank = env_int(getenv, "PMIX_RANK", -1);
    l.size = l.local_rank = l.local_size = -1;
  } else if (getenv("PMI_RANK") || getenv("PMI_SIZE")) {  // MPICH's hydra, srun --mpi=pmi2
    l.launcher = "pmi";
    l.rank = env_int(getenv, "PMI_RANK", -1);
    l.size = env_int(getenv, "PMI_SIZE", -1);
    l.local_rank = l.local_size = -1;
  }
  return l;
}

Launch detect_launch() {
  return detect_launch([](const char* name) -> const char* { return std::getenv(name); });
}

std::unique_ptr<Communicator> make_single() {
  return std::make_unique<SingleCommunicator>();
}

Communicator& world(const std::string& backend) {
  static std::unique_ptr<Communicator> comm;
  if (comm) return *comm;
  Launch launch = detect_launch();
  // One rank under a launcher needs no MPI; more than one (or an unknown count) does, whatever
  // the recipe says: N independent copies writing one output directory would be a disaster.
  bool need_mpi = backend == "mpi" || (launch.launched() && launch.size != 1);
  if (!need_mpi) {
    comm = make_single();
    return *comm;
  }
#if ZOFT_MPI
  comm = make_mpi(launch);
#else
  fail(
      "{} ranks were launched ({}) or dist.backend is mpi, but this zoft was built without MPI: "
      "install libopenmpi-dev openmpi-bin and rebuild",
      launch.size < 0 ? std::string("several") : std::to_string(launch.size),
      launch.launched() ? launch.launcher : std::string("no launcher"));
#endif
  return *comm;
}

std::string broadcast_string(Communicator& comm, std::string text, int root) {
  int64_t n = int64_t(text.size());
  comm.broadcast(&n, sizeof n, root);
  text.resize(size_t(n));
  if (n) comm.broadcast(text.data(), size_t(n), root);
  return text;
}

std::vector<int64_t> even_split(int64_t n, int parts) {
  ZOFT_CHECK(parts > 0 && n >= 0, "even_split({}, {})", n, parts);
  std::vector<int64_t> b(size_t(parts) + 1);
  for (int r = 0; r <= parts; ++r) b[size_t(r)] = n * r / parts;
  return b;
}

void all_gather_rows(Communicator& comm, const std::vector<float>& mine,
                     const std::vector<int64_t>& bounds, int64_t row_len, std::vector<float>& all) {
  const int size = comm.size();
  ZOFT_CHECK(bounds.size() == size_t(size) + 1, "all_gather_rows: {} bounds for {} ranks",
             bounds.size(), size);
  const int64_t my_rows = bounds[size_t(comm.rank()) + 1] - bounds[size_t(comm.rank())];
  ZOFT_CHECK(int64_t(mine.size()) == my_rows * row_len,
             "all_gather_rows: rank {} has {} values, its rows need {}", comm.rank(), mine.size(),
             my_rows * row_len);
  std::vector<size_t> counts(static_cast<size_t>(size));
  for (int r = 0; r < size; ++r)
    counts[size_t(r)] =
        size_t(bounds[size_t(r) + 1] - bounds[size_t(r)]) * size_t(row_len) * sizeof(float);
  all.resize(size_t(bounds.back() - bounds.front()) * size_t(row_len));
  comm.all_gather(mine.data(), all.data(), counts);
}

namespace {

template <class T>
void sum_in_rank_order(Communicator& comm, T* data, size_t n) {
  const size_t ranks = size_t(comm.size());
  if (ranks == 1 || n == 0) return;
  // In pieces, so that the gathered copies cost ranks x 1 Mi values, not ranks x the array.
  constexpr size_t kPiece = size_t(1) << 20;
  std::vector<T> gathered(ranks * std::min(n, kPiece));
  for (size_t begin = 0; begin < n; begin += kPiece) {
    const size_t len = std::min(kPiece, n - begin);
    comm.all_gather(data + begin, gathered.data(), std::vector<size_t>(ranks, len * sizeof(T)));
    for (size_t i = 0; i < len; ++i) {
      T sum = gathered[i];
      for (size_t r = 1; r < ranks; ++r) sum += gathered[r * len + i];
      data[begin + i] = sum;
    }
  }
}

}  // namespace

void all_reduce_sum_in_rank_order(Communicator& comm, float* data, size_t n) {
  sum_in_rank_order(comm, data, n);
}

void all_reduce_sum_in_rank_order(Communicator& comm, double* data, size_t n) {
  sum_in_rank_order(comm, data, n);
}

int threads_per_rank(const Communicator& comm, int requested) {
  if (requested > 0) return requested;
  return std::max(1, available_cores() / std::max(1, comm.local_size()));
}

}  // namespace zoft::dist
