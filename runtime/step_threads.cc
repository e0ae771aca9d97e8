#include "runtime/step_threads.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace kiln {
namespace {

thread_local bool in_task = false;  // this thread runs a task of a loop (a nested loop runs here)

int ThreadCount() {
  if (const char* s = std::getenv("HL_NUM_THREADS"); s != nullptr && *s) {
    const int n = std::atoi(s);
    if (n >= 1) return n;
  }
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

constexpr int kMaxThreads = 256;  // as Halide's pool

// The loop on the calling thread alone.
int Serial(void* uc, StepTask f, int min, int size, uint8_t* closure) {
  const bool was = in_task;
  in_task = true;
  int result = 0;
  for (int i = 0; i < size && result == 0; ++i) result = f(uc, min + i, closure);
  in_task = was;
  return result;
}

inline void Pause() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Waits until done() while the other threads finish: spins briefly, then yields the core (the
// thread waited for may need it, when the machine has other work).
template <typename Done>
void WaitUntil(Done done) {
  for (int spins = 0; !done(); ++spins) {
    if (spins < 4096) {
      Pause();
    } else {
      std::this_thread::yield();
    }
  }
}

// One loop at a time: the caller and the workers take tasks from per-thread ranges.
class Pool {
 public:
  explicit Pool(int threads) : threads_(threads), ranges_(threads) {
    for (int t = 1; t < threads; ++t) std::thread([this, t] { Work(t); }).detach();
  }

  int threads() const { return threads_; }

  int Run(void* uc, StepTask f, int min, int size, uint8_t* closure) {
    std::unique_lock<std::mutex> one(run_mu_, std::try_to_lock);
    if (!one.owns_lock()) return Serial(uc, f, min, size, closure);
    uc_ = uc;
    f_ = f;
    min_ = min;
    closure_ = closure;
    error_.store(0);
    done_.store(0);
    for (int t = 0; t < threads_; ++t) {
      ranges_[t].next.store(static_cast<int>(int64_t{size} * t / threads_));
      ranges_[t].end = static_cast<int>(int64_t{size} * (t + 1) / threads_);
    }
    const uint64_t gen = gen_.load() + 1;
    gen_.store(gen);
    {
      std::lock_guard<std::mutex> lock(sleep_mu_);
      if (sleepers_ > 0) wake_.notify_all();
    }
    TakeTasks(0);
    WaitUntil([&] { return done_.load() >= size; });  // tasks other threads have started
    finished_.store(gen);
    WaitUntil([&] { return active_.load() == 0; });  // a worker that saw this loop lets go of it
    return error_.load();
  }

 private:
  struct alignas(64) Range {
    std::atomic<int> next{0};
    int end = 0;
  };

  // Thread t's own range first, then what is left of the others'.
  void TakeTasks(int t) {
    in_task = true;
    for (int k = 0; k < threads_; ++k) {
      Range& r = ranges_[(t + k) % threads_];
      for (int i = r.next.fetch_add(1); i < r.end; i = r.next.fetch_add(1)) {
        if (error_.load(std::memory_order_relaxed) == 0) {
          const int result = f_(uc_, min_ + i, closure_);
          if (result != 0) {
            int none = 0;
            error_.compare_exchange_strong(none, result);
          }
        }
        done_.fetch_add(1);
      }
    }
    in_task = false;
  }

  void Work(int t) {
    uint64_t seen = 0;
    for (;;) {
      // Spin a little (the next loop of a step usually follows within microseconds), then sleep.
      const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
      uint64_t gen;
      for (int spins = 0;; ++spins) {
        gen = gen_.load();
        if (gen != seen) break;
        if ((spins & 63) == 63 && std::chrono::steady_clock::now() > until) {
          std::unique_lock<std::mutex> lock(sleep_mu_);
          ++sleepers_;
          wake_.wait(lock, [&] { return gen_.load() != seen; });
          --sleepers_;
          gen = gen_.load();
          break;
        }
        Pause();
      }
      seen = gen;
      active_.fetch_add(1);
      if (finished_.load() < gen) TakeTasks(t);  // not a loop that ended before this thread came
      active_.fetch_sub(1);
    }
  }

  const int threads_;
  std::vector<Range> ranges_;
  std::mutex run_mu_;
  void* uc_ = nullptr;
  StepTask f_ = nullptr;
  int min_ = 0;
  uint8_t* closure_ = nullptr;
  std::atomic<int> error_{0};
  std::atomic<int> done_{0};
  std::atomic<uint64_t> gen_{0};
  std::atomic<uint64_t> finished_{0};
  std::atomic<int> active_{0};
  std::mutex sleep_mu_;
  std::condition_variable wake_;
  int sleepers_ = 0;
};

Pool* ThePool() {
  // Never destroyed: its threads live as long as the process.
  static Pool* pool = new Pool(std::min(ThreadCount(), kMaxThreads));
  return pool;
}

}  // namespace

int StepDoParFor(void* user_context, StepTask f, int min, int size, uint8_t* closure) {
  if (size <= 0) return 0;
  if (in_task || size == 1 || ThePool()->threads() == 1) {
    return Serial(user_context, f, min, size, closure);
  }
  return ThePool()->Run(user_context, f, min, size, closure);
}

int StepThreads() { return ThePool()->threads(); }

}  // namespace kiln
