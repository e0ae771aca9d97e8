#include "runtime/communicator.h"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/status.h"
#include "runtime/mpi_plugin.h"

#ifndef KILN_VERSION
#define KILN_VERSION "unknown"
#endif

namespace kiln {
namespace {

class SingleProcessComm : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 1; }
  std::string backend() const override { return "single process"; }
  absl::Status AllReduceSum(void*, int64_t, ScalarType type) override { return CheckType(type); }
  absl::Status Broadcast(void*, int64_t, int root) override {
    if (root != 0) return absl::InvalidArgumentError(absl::StrCat("no rank ", root, " of 1"));
    return absl::OkStatus();
  }
  absl::Status AllGather(const void* in, int64_t bytes, void* out) override {
    if (bytes > 0) std::memmove(out, in, static_cast<size_t>(bytes));
    return absl::OkStatus();
  }
  static absl::Status CheckType(ScalarType t) {
    if (t == ScalarType::kF32 || t == ScalarType::kF64) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat("AllReduceSum sums F32 or F64 values, got ", ScalarTypeName(t)));
  }
};

// MPI through the plugin (runtime/mpi_plugin.h).
class MpiComm : public Communicator {
 public:
  static absl::StatusOr<std::unique_ptr<MpiComm>> Make(const LaunchInfo& launch,
                                                       const std::string& plugin) {
    void* lib = dlopen(plugin.c_str(), RTLD_NOW | RTLD_GLOBAL);  // global: Open MPI's components
    if (lib == nullptr) {                                        // resolve against libmpi
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot load Kiln's MPI plugin ", plugin, ": ", dlerror(),
          " (it needs Open MPI's libmpi: scripts/setup.sh installs libopenmpi-dev; KILN_MPI_PLUGIN "
          "names the plugin)"));
    }
    using Entry = const KilnMpiApi* (*)();
    auto entry = reinterpret_cast<Entry>(dlsym(lib, "kiln_mpi_api"));
    const KilnMpiApi* api = entry ? entry() : nullptr;
    if (api == nullptr || api->abi != KILN_MPI_PLUGIN_ABI) {
      return absl::FailedPreconditionError(
          absl::StrCat(plugin, " is not a Kiln MPI plugin of this version (interface ",
                       KILN_MPI_PLUGIN_ABI, "): rebuild Kiln"));
    }
    auto c = std::unique_ptr<MpiComm>(new MpiComm(api, launch));
    char version[128] = {0}, err[512] = {0};
    if (api->init(&c->rank_, &c->size_, version, sizeof version, err, sizeof err) != 0) {
      return absl::FailedPreconditionError(absl::StrCat("MPI could not start: ", err));
    }
    c->initialized_ = true;
    c->version_ = version;
    if (c->rank_ != launch.rank || c->size_ != launch.size) {
      return absl::FailedPreconditionError(absl::StrCat(
          "MPI says rank ", c->rank_, " of ", c->size_, ", the launcher's environment rank ",
          launch.rank, " of ", launch.size, ": was this process started by another MPI's mpirun?"));
    }
    return c;
  }
  ~MpiComm() override {
    if (initialized_) api_->finalize();
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return launch_.local_rank; }
  int local_size() const override { return launch_.local_size; }
  std::string backend() const override { return absl::StrCat("MPI (", version_, ")"); }
  absl::Status AllReduceSum(void* data, int64_t n, ScalarType type) override {
    KILN_RETURN_IF_ERROR(SingleProcessComm::CheckType(type));
    return Check(api_->allreduce_sum(data, n, type == ScalarType::kF64, err_, sizeof err_));
  }
  absl::Status Broadcast(void* data, int64_t bytes, int root) override {
    return Check(api_->broadcast(data, bytes, root, err_, sizeof err_));
  }
  absl::Status AllGather(const void* in, int64_t bytes, void* out) override {
    return Check(api_->allgather(in, bytes, out, err_, sizeof err_));
  }

 private:
  MpiComm(const KilnMpiApi* api, const LaunchInfo& launch) : api_(api), launch_(launch) {}
  absl::Status Check(int rc) {
    if (rc == 0) return absl::OkStatus();
    return absl::InternalError(absl::StrCat("rank ", rank_, ": ", err_));
  }
  const KilnMpiApi* api_;
  LaunchInfo launch_;
  int rank_ = 0, size_ = 1;
  bool initialized_ = false;
  std::string version_;
  char err_[512] = {0};
};

// Ends the process when a collective outlives the timeout. One thread, asleep unless armed.
class WatchdogComm : public Communicator {
 public:
  WatchdogComm(std::unique_ptr<Communicator> inner, double timeout_s)
      : inner_(std::move(inner)),
        timeout_s_(timeout_s),
        prefix_(absl::StrCat("[rank ", inner_->rank(), "] ")) {
    if (const char* k = std::getenv("KILN_TEST_KILL_RANK")) {
      std::vector<std::string> parts = absl::StrSplit(k, ':');
      int r = -1;
      int64_t n = -1;
      if ((parts.size() == 2 || (parts.size() == 3 && parts[2] == "hang")) &&
          absl::SimpleAtoi(parts[0], &r) && absl::SimpleAtoi(parts[1], &n) && r == inner_->rank()) {
        kill_at_ = n;
        hang_ = parts.size() == 3;
      }
    }
    thread_ = std::thread([this] { Watch(); });
  }
  ~WatchdogComm() override {
    {
      std::lock_guard<std::mutex> l(mu_);
      shutdown_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  int local_rank() const override { return inner_->local_rank(); }
  int local_size() const override { return inner_->local_size(); }
  std::string backend() const override { return inner_->backend(); }
  void set_timeout(double seconds) override {
    std::lock_guard<std::mutex> l(mu_);
    timeout_s_ = seconds;
  }
  absl::Status AllReduceSum(void* data, int64_t n, ScalarType type) override {
    Guard g(this, "allreduce", n * ScalarSize(type));
    return inner_->AllReduceSum(data, n, type);
  }
  absl::Status Broadcast(void* data, int64_t bytes, int root) override {
    Guard g(this, "broadcast", bytes);
    return inner_->Broadcast(data, bytes, root);
  }
  absl::Status AllGather(const void* in, int64_t bytes, void* out) override {
    Guard g(this, "allgather", bytes);
    return inner_->AllGather(in, bytes, out);
  }

 private:
  struct Guard {
    Guard(WatchdogComm* w, const char* what, int64_t bytes) : w_(w) { w_->Arm(what, bytes); }
    ~Guard() { w_->Disarm(); }
    WatchdogComm* w_;
  };
  void Arm(const char* what, int64_t bytes) {
    std::unique_lock<std::mutex> l(mu_);
    ++count_;
    if (count_ == kill_at_) {
      std::fprintf(stderr, "%sKILN_TEST_KILL_RANK: %s this rank at collective #%lld\n",
                   prefix_.c_str(), hang_ ? "stopping" : "killing", static_cast<long long>(count_));
      std::fflush(stderr);
      std::raise(hang_ ? SIGSTOP : SIGKILL);
    }
    armed_ = true;
    what_ = what;
    bytes_ = bytes;
    deadline_ = std::chrono::steady_clock::now() +
                std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                    std::chrono::duration<double>(timeout_s_));
    l.unlock();
    cv_.notify_all();
  }
  void Disarm() {
    std::lock_guard<std::mutex> l(mu_);
    armed_ = false;
  }
  void Watch() {
    std::unique_lock<std::mutex> l(mu_);
    while (!shutdown_) {
      if (!armed_) {
        cv_.wait(l);
        continue;
      }
      const int64_t seq = count_;
      if (cv_.wait_until(l, deadline_) == std::cv_status::timeout && armed_ && count_ == seq &&
          !shutdown_) {
        std::fprintf(stderr,
                     "%serror: %s #%lld (%lld bytes) did not complete within %g s: another rank "
                     "died, hangs or was stopped; ending this rank (set the limit with "
                     "--collective_timeout)\n",
                     prefix_.c_str(), what_, static_cast<long long>(count_),
                     static_cast<long long>(bytes_), timeout_s_);
        std::fflush(stderr);
        std::fflush(stdout);
        _exit(3);
      }
    }
  }

  std::unique_ptr<Communicator> inner_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread thread_;
  double timeout_s_;
  std::string prefix_;
  bool armed_ = false, shutdown_ = false, hang_ = false;
  const char* what_ = "";
  int64_t bytes_ = 0, count_ = 0, kill_at_ = -1;
  std::chrono::steady_clock::time_point deadline_;
};

absl::StatusOr<int> EnvInt(const std::function<const char*(const char*)>& get, const char* name,
                           int fallback) {
  const char* v = get(name);
  if (v == nullptr) return fallback;
  int x = 0;
  if (!absl::SimpleAtoi(v, &x) || x < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("the launcher's variable ", name, "='", v, "' is not a number >= 0"));
  }
  return x;
}

std::string FindMpiPlugin(const JobOptions& o) {
  if (!o.mpi_plugin.empty()) return o.mpi_plugin;
  if (const char* p = std::getenv("KILN_MPI_PLUGIN"); p != nullptr && *p) return p;
  std::vector<std::string> candidates;
  char exe[4096];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    std::string dir(exe, static_cast<size_t>(n));
    dir = dir.substr(0, dir.find_last_of('/'));
    candidates.push_back(dir + "/libkiln_mpi.so");
  }
#ifdef KILN_MPI_PLUGIN_BUILD_PATH
  candidates.push_back(KILN_MPI_PLUGIN_BUILD_PATH);
#endif
#ifdef KILN_MPI_PLUGIN_INSTALL_PATH
  candidates.push_back(KILN_MPI_PLUGIN_INSTALL_PATH);
#endif
  for (const std::string& c : candidates) {
    if (access(c.c_str(), R_OK) == 0) return c;
  }
  return "";
}

}  // namespace

absl::StatusOr<LaunchInfo> DetectLaunch(const std::function<const char*(const char*)>& getenv_fn) {
  auto get = getenv_fn ? getenv_fn : [](const char* n) -> const char* { return std::getenv(n); };
  LaunchInfo l;
  const char *rank_var, *size_var, *local_var, *local_size_var;
  if (get("OMPI_COMM_WORLD_SIZE") != nullptr) {
    l.launcher = "Open MPI";
    rank_var = "OMPI_COMM_WORLD_RANK";
    size_var = "OMPI_COMM_WORLD_SIZE";
    local_var = "OMPI_COMM_WORLD_LOCAL_RANK";
    local_size_var = "OMPI_COMM_WORLD_LOCAL_SIZE";
  } else if (get("PMI_SIZE") != nullptr) {
    l.launcher = "MPICH";
    rank_var = "PMI_RANK";
    size_var = "PMI_SIZE";
    local_var = "MPI_LOCALRANKID";
    local_size_var = "MPI_LOCALNRANKS";
  } else {
    return l;
  }
  KILN_ASSIGN_OR_RETURN(l.size, EnvInt(get, size_var, 1));
  if (get(rank_var) == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(size_var, " is set but ", rank_var, " is not: a broken launch"));
  }
  KILN_ASSIGN_OR_RETURN(l.rank, EnvInt(get, rank_var, 0));
  KILN_ASSIGN_OR_RETURN(l.local_rank, EnvInt(get, local_var, l.rank));
  KILN_ASSIGN_OR_RETURN(l.local_size, EnvInt(get, local_size_var, l.size));
  if (l.size < 1 || l.rank >= l.size || l.local_size < 1 || l.local_rank >= l.local_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the launcher's variables are inconsistent: ", rank_var, "=", l.rank, ", ", size_var, "=",
        l.size, ", ", local_var, "=", l.local_rank, ", ", local_size_var, "=", l.local_size));
  }
  return l;
}

std::unique_ptr<Communicator> SingleProcess() { return std::make_unique<SingleProcessComm>(); }

std::unique_ptr<Communicator> WithWatchdog(std::unique_ptr<Communicator> inner, double timeout_s) {
  return std::make_unique<WatchdogComm>(std::move(inner), timeout_s);
}

absl::StatusOr<std::unique_ptr<Communicator>> JoinJob(const JobOptions& options) {
  KILN_ASSIGN_OR_RETURN(LaunchInfo launch, DetectLaunch());
  if (launch.launcher.empty()) return SingleProcess();
  if (launch.launcher == "MPICH") {
    return absl::FailedPreconditionError(absl::StrCat(
        "started by an MPICH-style launcher (PMI_RANK=", launch.rank, ", PMI_SIZE=", launch.size,
        "), but Kiln's MPI support is built with Open MPI: start the job with Open MPI's mpirun "
        "(Debian: openmpi-bin)"));
  }
  const std::string plugin = FindMpiPlugin(options);
  if (plugin.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "started by mpirun as rank ", launch.rank, " of ", launch.size,
        ", but this Kiln has no MPI plugin (libkiln_mpi.so): build Kiln with -DKILN_WITH_MPI=ON "
        "and Open MPI installed (scripts/setup.sh), or set KILN_MPI_PLUGIN to its path"));
  }
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<MpiComm> mpi, MpiComm::Make(launch, plugin));
  return WithWatchdog(std::move(mpi), options.timeout_s);
}

absl::Status CheckSameOnEveryRank(Communicator& comm,
                                  const std::vector<std::pair<std::string, std::string>>& fields) {
  // First the number of fields and the version (so the second gather has one size everywhere),
  // then one fixed-size record per field: its name, a hash of its value and the value's start.
  constexpr int kHead = 64, kName = 48, kValue = 200, kRecord = kName + 8 + kValue;
  const int n = comm.size();
  std::string head(kHead, '\0');
  std::snprintf(head.data(), kHead, "%zu %s", fields.size(), KilnVersion());
  std::string heads(static_cast<size_t>(kHead) * n, '\0');
  KILN_RETURN_IF_ERROR(comm.AllGather(head.data(), kHead, heads.data()));
  for (int r = 1; r < n; ++r) {
    if (std::memcmp(heads.data(), heads.data() + r * kHead, kHead) != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("rank ", r, " runs another Kiln than rank 0 (fields and version: '",
                       heads.data() + r * kHead, "' against '", heads.data(),
                       "'): every rank must run the same "
                       "program"));
    }
  }
  std::string mine(static_cast<size_t>(kRecord) * fields.size(), '\0');
  for (size_t i = 0; i < fields.size(); ++i) {
    char* rec = mine.data() + i * kRecord;
    std::snprintf(rec, kName, "%s", fields[i].first.c_str());
    uint64_t h = 1469598103934665603ull;  // FNV-1a
    for (unsigned char c : fields[i].second) h = (h ^ c) * 1099511628211ull;
    std::memcpy(rec + kName, &h, 8);
    std::snprintf(rec + kName + 8, kValue, "%s", fields[i].second.c_str());
  }
  std::string all(mine.size() * n, '\0');
  KILN_RETURN_IF_ERROR(comm.AllGather(mine.data(), static_cast<int64_t>(mine.size()), all.data()));
  for (int r = 1; r < n; ++r) {
    for (size_t i = 0; i < fields.size(); ++i) {
      const char* a = all.data() + i * kRecord;
      const char* b = all.data() + r * mine.size() + i * kRecord;
      if (std::memcmp(a, b, kName + 8) == 0) continue;
      return absl::FailedPreconditionError(
          absl::StrCat("rank ", r, " differs from rank 0 in ", a, ": '", b + kName + 8,
                       "' on rank ", r, ", '", a + kName + 8,
                       "' on rank 0; every rank must train the same model with the same settings"));
    }
  }
  return absl::OkStatus();
}

int ShareCores(int local_size, int cores) {
  if (const char* set = std::getenv("HL_NUM_THREADS"); set != nullptr && *set) {
    int n = 0;
    if (absl::SimpleAtoi(set, &n) && n > 0) return n;
  }
  const int n = std::max(1, cores / std::max(1, local_size));
  setenv("HL_NUM_THREADS", std::to_string(n).c_str(), 1);
  return n;
}

std::string RankPrefix(const Communicator* comm) {
  if (comm == nullptr || comm->size() <= 1 || comm->rank() == 0) return "";
  return absl::StrCat("[rank ", comm->rank(), "] ");
}

const char* KilnVersion() { return KILN_VERSION; }

}  // namespace kiln
