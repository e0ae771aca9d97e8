// The communicator without MPI: the launcher's environment, the errors a user sees when MPI
// cannot be used, the single-process collectives, the pre-compile job check and the watchdog.
#include "runtime/communicator.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln {
namespace {

using ::testing::HasSubstr;

std::function<const char*(const char*)> Env(std::map<std::string, std::string> vars) {
  auto held = std::make_shared<std::map<std::string, std::string>>(std::move(vars));
  return [held](const char* name) -> const char* {
    auto it = held->find(name);
    return it == held->end() ? nullptr : it->second.c_str();
  };
}

TEST(CommunicatorTest, NoLauncherIsOneProcess) {
  absl::StatusOr<LaunchInfo> l = DetectLaunch(Env({}));
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->launcher, "");
  EXPECT_EQ(l->size, 1);
  EXPECT_EQ(l->rank, 0);
}

TEST(CommunicatorTest, ReadsOpenMpisVariables) {
  absl::StatusOr<LaunchInfo> l = DetectLaunch(Env({{"OMPI_COMM_WORLD_SIZE", "4"},
                                                   {"OMPI_COMM_WORLD_RANK", "3"},
                                                   {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                                                   {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}}));
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->launcher, "Open MPI");
  EXPECT_EQ(l->size, 4);
  EXPECT_EQ(l->rank, 3);
  EXPECT_EQ(l->local_rank, 1);
  EXPECT_EQ(l->local_size, 2);
}

TEST(CommunicatorTest, ReadsMpichsVariables) {
  absl::StatusOr<LaunchInfo> l = DetectLaunch(Env({{"PMI_SIZE", "2"}, {"PMI_RANK", "1"}}));
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->launcher, "MPICH");
  EXPECT_EQ(l->rank, 1);
  EXPECT_EQ(l->local_size, 2);  // absent: every rank on this machine
}

TEST(CommunicatorTest, MalformedOrInconsistentVariablesAreNamed) {
  absl::StatusOr<LaunchInfo> a =
      DetectLaunch(Env({{"OMPI_COMM_WORLD_SIZE", "two"}, {"OMPI_COMM_WORLD_RANK", "0"}}));
  EXPECT_THAT(a.status().message(), HasSubstr("OMPI_COMM_WORLD_SIZE='two'"));
  absl::StatusOr<LaunchInfo> b =
      DetectLaunch(Env({{"OMPI_COMM_WORLD_SIZE", "2"}, {"OMPI_COMM_WORLD_RANK", "2"}}));
  EXPECT_THAT(b.status().message(), HasSubstr("inconsistent"));
  absl::StatusOr<LaunchInfo> c = DetectLaunch(Env({{"OMPI_COMM_WORLD_SIZE", "2"}}));
  EXPECT_THAT(c.status().message(), HasSubstr("OMPI_COMM_WORLD_RANK is not"));
}

TEST(CommunicatorTest, MpichLauncherIsRefusedClearly) {
  setenv("PMI_SIZE", "2", 1);
  setenv("PMI_RANK", "0", 1);
  absl::StatusOr<std::unique_ptr<Communicator>> c = JoinJob({});
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(c.status().message(), HasSubstr("MPICH"));
  EXPECT_THAT(c.status().message(), HasSubstr("Open MPI's mpirun"));
}

TEST(CommunicatorTest, AMissingPluginIsRefusedWithWhatToDo) {
  setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
  setenv("OMPI_COMM_WORLD_RANK", "1", 1);
  JobOptions o;
  o.mpi_plugin = "/nonexistent/libkiln_mpi.so";
  absl::StatusOr<std::unique_ptr<Communicator>> c = JoinJob(o);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(c.status().message(), HasSubstr("cannot load Kiln's MPI plugin /nonexistent"));
}

TEST(CommunicatorTest, OneProcessCollectivesAreTheIdentity) {
  std::unique_ptr<Communicator> c = SingleProcess();
  EXPECT_EQ(c->rank(), 0);
  EXPECT_EQ(c->size(), 1);
  float v[3] = {1.5f, -2, 3};
  ASSERT_TRUE(c->AllReduceSum(v, 3, ScalarType::kF32).ok());
  EXPECT_EQ(v[0], 1.5f);
  EXPECT_EQ(v[1], -2.0f);
  char out[4];
  ASSERT_TRUE(c->AllGather("abc", 4, out).ok());
  EXPECT_STREQ(out, "abc");
  int32_t i = 1;
  EXPECT_EQ(c->AllReduceSum(&i, 1, ScalarType::kI32).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c->Broadcast(v, 4, 1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(CheckSameOnEveryRank(*c, {{"model", "x"}}).ok());
  EXPECT_EQ(RankPrefix(c.get()), "");
}

// Two ranks in one process: rank 1's gathered bytes are what `peer` (rank 1's own check,
// recorded) contributed to each gather.
class TwoRanks : public Communicator {
 public:
  explicit TwoRanks(std::vector<std::string> peer) : peer_(std::move(peer)) {}
  int rank() const override { return 0; }
  int size() const override { return 2; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 2; }
  std::string backend() const override { return "two ranks in one process"; }
  absl::Status AllReduceSum(void*, int64_t, ScalarType) override { return absl::OkStatus(); }
  absl::Status Broadcast(void*, int64_t, int) override { return absl::OkStatus(); }
  absl::Status AllGather(const void* in, int64_t bytes, void* out) override {
    std::memcpy(out, in, bytes);
    const std::string& p = peer_.at(calls_++);
    if (static_cast<int64_t>(p.size()) != bytes) return absl::InternalError("size mismatch");
    std::memcpy(static_cast<char*>(out) + bytes, p.data(), bytes);
    return absl::OkStatus();
  }

 private:
  std::vector<std::string> peer_;
  size_t calls_ = 0;
};

// What a rank with `fields` contributes to each gather of CheckSameOnEveryRank.
class Recorder : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 1; }
  std::string backend() const override { return "recorder"; }
  absl::Status AllReduceSum(void*, int64_t, ScalarType) override { return absl::OkStatus(); }
  absl::Status Broadcast(void*, int64_t, int) override { return absl::OkStatus(); }
  absl::Status AllGather(const void* in, int64_t bytes, void* out) override {
    sent.emplace_back(static_cast<const char*>(in), bytes);
    std::memcpy(out, in, bytes);
    return absl::OkStatus();
  }
  std::vector<std::string> sent;
};

std::vector<std::string> Contribution(
    const std::vector<std::pair<std::string, std::string>>& fields) {
  Recorder r;
  EXPECT_TRUE(CheckSameOnEveryRank(r, fields).ok());
  return r.sent;
}

TEST(CommunicatorTest, JobCheckNamesTheRankTheFieldAndBothValues) {
  const std::vector<std::pair<std::string, std::string>> mine = {{"--batch_size", "64"},
                                                                 {"optimizer", "adam"}};
  TwoRanks same(Contribution(mine));
  EXPECT_TRUE(CheckSameOnEveryRank(same, mine).ok());
  TwoRanks other(Contribution({{"--batch_size", "64"}, {"optimizer", "sgd"}}));
  absl::Status s = CheckSameOnEveryRank(other, mine);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(
      s.message(),
      HasSubstr("rank 1 differs from rank 0 in optimizer: 'sgd' on rank 1, 'adam' on rank 0"));
  // Another number of fields (another Kiln): refused before the per-field gather.
  TwoRanks older(Contribution({{"--batch_size", "64"}}));
  absl::Status t = CheckSameOnEveryRank(older, mine);
  EXPECT_THAT(t.message(), HasSubstr("rank 1 runs another Kiln than rank 0"));
}

class Stuck : public Recorder {
 public:
  absl::Status AllReduceSum(void*, int64_t, ScalarType) override {
    std::this_thread::sleep_for(std::chrono::seconds(20));
    return absl::OkStatus();
  }
};

TEST(CommunicatorDeathTest, AStuckCollectiveEndsTheProcess) {
  EXPECT_EXIT(
      {
        std::unique_ptr<Communicator> c = WithWatchdog(std::make_unique<Stuck>(), 0.2);
        float v = 0;
        (void)c->AllReduceSum(&v, 1, ScalarType::kF32);
      },
      ::testing::ExitedWithCode(3), "allreduce #1 \\(4 bytes\\) did not complete within 0.2 s");
}

TEST(CommunicatorTest, AWatchdogLetsCollectivesThatFinishPass) {
  std::unique_ptr<Communicator> c = WithWatchdog(std::make_unique<Recorder>(), 0.5);
  for (int i = 0; i < 100; ++i) {
    float v = 1;
    ASSERT_TRUE(c->AllReduceSum(&v, 1, ScalarType::kF32).ok());
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(700));  // idle: no timeout
  EXPECT_EQ(c->size(), 1);
}

TEST(CommunicatorTest, ShareCoresSplitsTheMachineUnlessTheUserChose) {
  unsetenv("HL_NUM_THREADS");
  EXPECT_EQ(ShareCores(/*local_size=*/2, /*cores=*/8), 4);
  EXPECT_STREQ(std::getenv("HL_NUM_THREADS"), "4");
  unsetenv("HL_NUM_THREADS");
  EXPECT_EQ(ShareCores(4, 2), 1);  // never 0
  setenv("HL_NUM_THREADS", "3", 1);
  EXPECT_EQ(ShareCores(2, 8), 3);
}

}  // namespace
}  // namespace kiln
