// NCCL's host side without a GPU: the library is found (or its absence explained), and creating a
// communicator where CUDA cannot run fails with the reason instead of crashing or hanging.
#include "runtime/nccl.h"

#include <cstdio>
#include <cstdlib>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln {
namespace {

using ::testing::HasSubstr;

TEST(NcclTest, AMissingLibraryIsUnavailableNamingWhatWasTried) {
  setenv("KILN_NCCL_LIBRARY", "/nonexistent/libnccl.so.2", 1);
  absl::StatusOr<NcclLibrary> lib = LoadNccl();
  EXPECT_EQ(lib.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(lib.status().message(), HasSubstr("tried /nonexistent/libnccl.so.2"));
  EXPECT_THAT(lib.status().message(), HasSubstr("KILN_NCCL_LIBRARY"));
}

TEST(NcclTest, TheInstalledLibraryLoadsOrSaysWhyNot) {
  unsetenv("KILN_NCCL_LIBRARY");
  absl::StatusOr<NcclLibrary> lib = LoadNccl();
  if (!lib.ok()) {
    EXPECT_EQ(lib.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_THAT(lib.status().message(), HasSubstr("tried libnccl.so.2"));
    return;
  }
  std::printf("NCCL %d from %s\n", lib->version, lib->path.c_str());
  EXPECT_GE(lib->version, 20000) << lib->path;  // NCCL 2.x: major * 10000 + minor * 100 + patch
  EXPECT_FALSE(lib->path.empty());
}

TEST(NcclTest, NoCudaDriverFailsCleanlyOnEveryRank) {
  unsetenv("KILN_NCCL_LIBRARY");
  setenv("KILN_LIBCUDA", "/nonexistent/libcuda.so.1", 1);
  std::unique_ptr<Communicator> host = SingleProcess();
  absl::StatusOr<std::unique_ptr<NcclCommunicator>> c = NcclCommunicator::Create(*host, 0);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable);
  // Without NCCL the library is named; with it, the missing driver.
  EXPECT_THAT(c.status().message(), ::testing::AnyOf(HasSubstr("cannot load the NVIDIA driver"),
                                                     HasSubstr("NCCL is unavailable")));
}

}  // namespace
}  // namespace kiln
