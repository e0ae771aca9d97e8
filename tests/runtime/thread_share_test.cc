// HL_NUM_THREADS set by ShareCores before the first pipeline runs sizes the JIT's thread pool:
// one process per test (ctest runs each gtest case alone), nothing of Halide run before.
#include <set>
#include <thread>

#include "Halide.h"
#include "gtest/gtest.h"
#include "runtime/communicator.h"
#include "runtime/step_threads.h"

namespace kiln {
namespace {

TEST(ThreadShareTest, EachRankGetsItsShareOfTheCores) {
  unsetenv("HL_NUM_THREADS");
  // Two ranks on a machine of four cores: two threads each.
  ASSERT_EQ(ShareCores(/*local_size=*/2, /*cores=*/4), 2);
  Halide::Func f("f");
  Halide::Var x("x");
  f(x) = x * 2;
  f.parallel(x);
  Halide::Buffer<int> out = f.realize({64});
  ASSERT_EQ(out(5), 10);
  // The pool the pipeline started: halide_set_num_threads returns the current size.
  std::vector<Halide::Internal::JITModule> runtime = Halide::Internal::JITSharedRuntime::get(
      nullptr, Halide::get_jit_target_from_environment(), true);
  ASSERT_FALSE(runtime.empty());
  Halide::Internal::JITModule::Symbol s = runtime[0].find_symbol_by_name("halide_set_num_threads");
  ASSERT_NE(s.address, nullptr);
  auto set_threads = reinterpret_cast<int (*)(int)>(s.address);
  const int threads = set_threads(2);
  EXPECT_EQ(threads, 2);
  // Kiln's threads for compiled steps (runtime/step_threads.h), started after it too.
  EXPECT_EQ(StepThreads(), 2);
}

}  // namespace
}  // namespace kiln
