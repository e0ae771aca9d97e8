// Crash safety of checkpoints. A child process (crash_child.cc) trains and saves a checkpoint per
// epoch, and SIGKILLs itself at each step of a save (file opened, mid-write, before and after
// fsync, before and after the rename). After every kill, the newest checkpoint on disk must be
// complete, load, hold the epoch it claims, and resume to exactly the parameters of an
// uninterrupted run. Then kills at random moments, and disk-full and short writes injected through
// the same hook: a clear error and the previous checkpoint intact.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <random>
#include <thread>

#include "gtest/gtest.h"
#include "runtime/safetensors.h"
#include "tests/runtime/test_files.h"

extern char** environ;

namespace kiln {
namespace {

namespace fs = std::filesystem;

const std::string& Root() {
  static const std::string r = [] {
    std::string d = ::testing::TempDir() + "/crash_safety_" + std::to_string(getpid());
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
  }();
  return r;
}

pid_t Start(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  std::string bin = KILN_CRASH_CHILD;
  argv.push_back(bin.data());
  std::vector<std::string> copy = args;
  for (std::string& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  EXPECT_EQ(posix_spawn(&pid, bin.c_str(), nullptr, nullptr, argv.data(), environ), 0);
  return pid;
}

int Wait(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

// The tensors of a checkpoint, without its metadata.
std::vector<std::pair<std::string, std::string>> Tensors(const std::string& path) {
  auto f = LoadSafetensors(path);
  EXPECT_TRUE(f.ok()) << f.status();
  std::vector<std::pair<std::string, std::string>> out;
  if (!f.ok()) return out;
  for (const auto& [name, t] : f->tensors) {
    out.push_back({name, std::string(static_cast<const char*>(t.raw()), t.bytes())});
  }
  return out;
}

const std::vector<std::pair<std::string, std::string>>& Reference() {
  static const auto ref = [] {
    const std::string d = Root() + "/reference";
    fs::create_directories(d);
    int st = Wait(Start({d, "4"}));
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
    return Tensors(d + "/final.safetensors");
  }();
  return ref;
}

const char* kPoints[] = {"opened",      "mid_write",     "before_fsync",
                         "after_fsync", "before_rename", "after_rename"};

TEST(CrashSafetyTest, KillAtEveryStepOfASaveLeavesALoadableCheckpointThatResumesExactly) {
  ASSERT_FALSE(Reference().empty());
  int kills = 0;
  for (int p = 0; p < 6; ++p) {
    for (int save : {1, 3}) {
      const std::string d = Root() + "/" + kPoints[p] + "_" + std::to_string(save);
      fs::create_directories(d);
      int st = Wait(Start({d, "4", kPoints[p], std::to_string(save)}));
      ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << kPoints[p] << " " << st;
      ++kills;
      const std::string ckpt = d + "/ckpt.safetensors";
      const bool renamed = p == 5;  // killed after the rename: the new file is in place
      const int want_epoch = renamed ? save : save - 1;
      if (want_epoch == 0) {
        EXPECT_FALSE(fs::exists(ckpt)) << kPoints[p] << ": a partial first checkpoint is visible";
      } else {
        auto f = LoadSafetensors(ckpt);
        ASSERT_TRUE(f.ok()) << kPoints[p] << " save " << save << ": " << f.status();
        EXPECT_EQ(f->metadata["epoch"], std::to_string(want_epoch)) << kPoints[p];
      }
      st = Wait(Start({d, "4", "resume"}));
      ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << kPoints[p] << " resume " << st;
      EXPECT_EQ(Tensors(d + "/final.safetensors"), Reference())
          << kPoints[p] << " save " << save << ": resumed run differs from the uninterrupted one";
    }
  }
  EXPECT_EQ(kills, 12);
}

TEST(CrashSafetyTest, KillsAtRandomMomentsNeverLeaveACorruptCheckpoint) {
  std::mt19937 rng(12345);
  int kills = 0, loaded = 0;
  const std::string d = Root() + "/random";
  fs::create_directories(d);
  // A first run to completion fills the compile cache (each later child starts in milliseconds)
  // and leaves a first checkpoint.
  int st = Wait(Start({d, "1"}));
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
  for (int i = 0; i < 20; ++i) {
    pid_t pid = Start({d, "100000", "resume"});
    std::this_thread::sleep_for(std::chrono::milliseconds(50 + rng() % 500));
    kill(pid, SIGKILL);
    Wait(pid);
    ++kills;
    if (!fs::exists(d + "/ckpt.safetensors")) continue;
    auto f = LoadSafetensors(d + "/ckpt.safetensors");
    ASSERT_TRUE(f.ok()) << "after kill " << i << ": " << f.status();
    ++loaded;
  }
  EXPECT_EQ(kills, 20);
  EXPECT_EQ(loaded, kills) << "the first checkpoint must survive every kill";
  std::printf("random kills: %d, checkpoints loaded afterwards: %d, corrupt: 0\n", kills, loaded);
}

int DiskFull(SavePoint p, size_t*) { return p == SavePoint::kWrite ? ENOSPC : 0; }
int ShortWrites(SavePoint p, size_t* len) {
  if (p == SavePoint::kWrite) *len = std::max<size_t>(1, *len / 3);
  return 0;
}
int ShortThenFull(SavePoint p, size_t* len) {
  static int n = 0;
  if (p == SavePoint::kOpened) n = 0;
  if (p != SavePoint::kWrite) return 0;
  if (++n > 2) return ENOSPC;
  *len = std::max<size_t>(1, *len / 2);
  return 0;
}

TEST(CrashSafetyTest, DiskFullAndShortWritesKeepThePreviousCheckpoint) {
  const std::string path = Root() + "/disk_full.safetensors";
  Tensor a(ScalarType::kF32, {100, 10}), b(ScalarType::kF32, {100, 10});
  for (int64_t i = 0; i < a.size(); ++i) a.data<float>()[i] = 1, b.data<float>()[i] = 2;
  ASSERT_TRUE(SaveSafetensors(path, {{"w", &a}}).ok());
  const std::string before = testing::ReadAll(path);
  for (SaveFaultHook hook : {DiskFull, ShortThenFull}) {
    SetSaveFaultHookForTesting(hook);
    absl::Status s = SaveSafetensors(path, {{"w", &b}});
    SetSaveFaultHookForTesting(nullptr);
    EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
    EXPECT_NE(s.message().find("No space left on device"), std::string::npos) << s;
    EXPECT_EQ(testing::ReadAll(path), before) << "the previous checkpoint changed";
    for (const auto& e : fs::directory_iterator(Root())) {
      EXPECT_EQ(e.path().string().find("disk_full.safetensors.tmp"), std::string::npos)
          << "temporary file left behind: " << e.path();
    }
  }
  SetSaveFaultHookForTesting(ShortWrites);  // short writes alone are retried to completion
  absl::Status s = SaveSafetensors(path, {{"w", &b}});
  SetSaveFaultHookForTesting(nullptr);
  ASSERT_TRUE(s.ok()) << s;
  auto f = LoadSafetensors(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(std::memcmp(f->Find("w")->raw(), b.raw(), b.bytes()), 0);
}

}  // namespace
}  // namespace kiln
