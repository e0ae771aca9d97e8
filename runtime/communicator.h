// The processes of a data-parallel job, as the training loop sees them: this process's rank, the
// number of ranks, and the few collectives data-parallel training needs (a sum of the gradient
// buffer, a broadcast of the parameters from rank 0, a gather of each rank's description).
//
// Implementations:
//   - one process (the default; nothing to install): every collective is the identity;
//   - MPI, when the process was started by Open MPI's mpirun (its rank variables are set): the
//     MPI calls live in a plugin, libkiln_mpi.so, loaded at run time, so programs and AOT
//     binaries start on machines without MPI (built when -DKILN_WITH_MPI=ON, the default when
//     Open MPI is found).
// Every communicator of a job is guarded by a watchdog: a collective that does not complete
// within the timeout (a rank died, hangs or was stopped) ends this process with a message and a
// non-zero exit code (mpirun then ends the others), never a hang.
//
//   KILN_ASSIGN_OR_RETURN(std::unique_ptr<kiln::Communicator> comm, kiln::JoinJob({}));
//   KILN_RETURN_IF_ERROR(kiln::CheckSameOnEveryRank(*comm, {{"model", fingerprint}}));
//   trainer.set_communicator(comm.get());
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "base/tensor.h"

namespace kiln {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // The rank among the processes of this machine (chooses a GPU), and their number.
  virtual int local_rank() const = 0;
  virtual int local_size() const = 0;
  virtual std::string backend() const = 0;  // "single process", "MPI (Open MPI 4.1.4)"

  // Every rank calls each collective in the same order with the same sizes (the signature check,
  // CheckSameOnEveryRank, guarantees it for the training loop's).
  // The sum over the ranks of `n` float32 or float64 values, in place; the same on every rank.
  virtual absl::Status AllReduceSum(void* data, int64_t n, ScalarType type) = 0;
  // `bytes` bytes of rank `root` into every rank's `data`.
  virtual absl::Status Broadcast(void* data, int64_t bytes, int root) = 0;
  // Every rank's `bytes` bytes from `in`, in rank order, into `out` (size() * bytes bytes).
  virtual absl::Status AllGather(const void* in, int64_t bytes, void* out) = 0;

  // Several sums at once (NCCL groups them into one launch); by default one after another.
  struct Span {
    void* data;
    int64_t count;
    ScalarType type;
  };
  virtual absl::Status AllReduceSumMany(const std::vector<Span>& spans) {
    for (const Span& s : spans) {
      absl::Status st = AllReduceSum(s.data, s.count, s.type);
      if (!st.ok()) return st;
    }
    return absl::OkStatus();
  }

  // Collectives that do not complete within `seconds` end the process (see WithWatchdog).
  virtual void set_timeout(double seconds) { (void)seconds; }
};

// Where this process stands in a job, from its launcher's environment.
struct LaunchInfo {
  std::string launcher;  // "" (not started by a launcher), "Open MPI" or "MPICH"
  int rank = 0, size = 1, local_rank = 0, local_size = 1;
};
// Reads Open MPI's OMPI_COMM_WORLD_{RANK,SIZE,LOCAL_RANK,LOCAL_SIZE} or MPICH's (Hydra)
// PMI_RANK, PMI_SIZE, MPI_LOCALRANKID, MPI_LOCALNRANKS. InvalidArgument naming the variable for a
// malformed or inconsistent value.
absl::StatusOr<LaunchInfo> DetectLaunch(
    const std::function<const char*(const char*)>& getenv_fn = nullptr);

struct JobOptions {
  double timeout_s = 60;  // for every collective (set_timeout changes it)
  // Where libkiln_mpi.so is; empty: $KILN_MPI_PLUGIN, else beside the executable, else where
  // Kiln was built and installed.
  std::string mpi_plugin;
};
// The communicator of this process: one process when no launcher started it; MPI under Open
// MPI's mpirun (even with one rank). FailedPrecondition, saying what to do, when a launcher
// started it but MPI cannot be used (Kiln built without MPI, the plugin or libmpi missing,
// MPICH's launcher for an Open MPI build).
absl::StatusOr<std::unique_ptr<Communicator>> JoinJob(const JobOptions& options);

// The communicator of a process that is not part of a job (rank 0 of 1).
std::unique_ptr<Communicator> SingleProcess();

// `inner` with a watchdog: when a collective has not returned after the timeout, prints
// "[rank r] error: <collective> #<n> did not complete within T s ..." and ends the process with
// exit code 3 (_exit: no destructor can hang). Test hook: with KILN_TEST_KILL_RANK="r:n" in the
// environment, rank r kills itself (SIGKILL) when it enters its n-th collective; with "r:n:hang"
// it stops itself (SIGSTOP) there instead, as a hung rank would.
std::unique_ptr<Communicator> WithWatchdog(std::unique_ptr<Communicator> inner, double timeout_s);

// Before compiling: every rank describes its job as (field, value) pairs (model fingerprint,
// shapes, per-rank batch, optimizer, Kiln version...); FailedPrecondition on every rank when
// any rank's differ from rank 0's, naming the first differing rank, the field and both values.
absl::Status CheckSameOnEveryRank(Communicator& comm,
                                  const std::vector<std::pair<std::string, std::string>>& fields);

// Each rank of a machine gets its share of the cores: sets HL_NUM_THREADS (the steps' threads,
// runtime/step_threads.h, and Halide's pool read it when a pipeline first runs in parallel) to
// max(1, cores / local_size) unless it is set already. Returns the number of threads each rank's
// pipelines will use.
int ShareCores(int local_size, int cores);

// "[rank r] " for ranks > 0 of a job of several (the prefix of their warnings), "" otherwise.
std::string RankPrefix(const Communicator* comm);

// Kiln's version (the CMake project version).
const char* KilnVersion();

}  // namespace kiln
