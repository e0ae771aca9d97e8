// Kiln's threads for the steps' parallel loops (runtime/step_threads.h): every task once, the
// first failure returned, nested and concurrent loops. (Which thread runs which task depends on
// the machine's other work, so the ranges are not asserted: bench/ measures what they are for.)
#include "runtime/step_threads.h"

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace kiln {
namespace {

struct Record {
  std::vector<std::atomic<int>> runs;
  std::vector<std::atomic<int>> thread_of;  // a small id per thread, -1 before the task ran
  explicit Record(int n) : runs(n), thread_of(n) {
    for (auto& t : thread_of) t = -1;
  }
};

int ThreadId() {
  static std::atomic<int> next{0};
  thread_local int id = next++;
  return id;
}

int RecordTask(void* uc, int i, uint8_t*) {
  auto* r = static_cast<Record*>(uc);
  r->runs[i]++;
  r->thread_of[i] = ThreadId();
  volatile double x = 0;  // a little work, so that the other threads join in
  for (int k = 0; k < 2000; ++k) x = x + k;
  return 0;
}

TEST(StepThreadsTest, EveryTaskRunsOnce) {
  for (int size : {1, 2, 3, 7, 64, 1000}) {
    Record r(size);
    ASSERT_EQ(StepDoParFor(&r, RecordTask, 0, size, nullptr), 0);
    for (int i = 0; i < size; ++i) EXPECT_EQ(r.runs[i], 1) << "task " << i << " of " << size;
  }
  // min offsets the task numbers.
  Record r(10);
  ASSERT_EQ(
      StepDoParFor(
          &r, [](void* uc, int i, uint8_t* c) { return RecordTask(uc, i - 5, c); }, 5, 10, nullptr),
      0);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(r.runs[i], 1);
  EXPECT_EQ(StepDoParFor(&r, RecordTask, 0, 0, nullptr), 0);  // an empty loop
}

TEST(StepThreadsTest, TheFirstFailureComesBack) {
  std::atomic<int> ran{0};
  auto fail_at_7 = [](void* uc, int i, uint8_t*) {
    static_cast<std::atomic<int>*>(uc)->fetch_add(1);
    return i == 7 ? -7 : 0;
  };
  EXPECT_EQ(StepDoParFor(&ran, fail_at_7, 0, 100, nullptr), -7);
  EXPECT_GE(ran.load(), 1);
  // The threads are free again for the next loop.
  Record r(50);
  EXPECT_EQ(StepDoParFor(&r, RecordTask, 0, 50, nullptr), 0);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(r.runs[i], 1);
}

// A loop inside a task (a nested parallel loop) runs on the task's thread; two threads that start
// loops at once both finish (the second runs its loop alone).
TEST(StepThreadsTest, NestedAndConcurrentLoopsFinish) {
  std::atomic<int> inner{0};
  auto outer = [](void* uc, int, uint8_t*) {
    auto body = [](void* c, int, uint8_t*) {
      static_cast<std::atomic<int>*>(c)->fetch_add(1);
      return 0;
    };
    return StepDoParFor(uc, body, 0, 10, nullptr);
  };
  ASSERT_EQ(StepDoParFor(&inner, outer, 0, 20, nullptr), 0);
  EXPECT_EQ(inner.load(), 200);
  std::vector<Record> records;
  records.reserve(4);
  for (int t = 0; t < 4; ++t) records.emplace_back(500);
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&, t] {
      for (int rep = 0; rep < 20; ++rep) {
        EXPECT_EQ(StepDoParFor(&records[t], RecordTask, 0, 500, nullptr), 0);
      }
    });
  }
  for (auto& c : callers) c.join();
  for (auto& r : records) {
    for (int i = 0; i < 500; ++i) EXPECT_EQ(r.runs[i], 20);
  }
}

}  // namespace
}  // namespace kiln
