#include "runtime/step_allocator.h"

#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <vector>

namespace kiln {
namespace {

constexpr size_t kAlign = 128;                // Halide's strictest buffer alignment
constexpr size_t kPooledMin = 64 * 1024;      // smaller blocks go straight to malloc
constexpr size_t kPoolCap = size_t{1} << 30;  // at most 1 GiB held for reuse

struct Pool {
  std::mutex mu;
  std::map<size_t, std::vector<void*>> free_blocks;  // by rounded size
  size_t held = 0;
};
Pool& ThePool() {
  static Pool* p = new Pool;  // never destroyed: steps may free during static destruction
  return *p;
}

// Each block starts with a header holding its rounded size; the caller's pointer is kAlign bytes
// in. Sizes are multiples of kAlign: aligned_alloc requires the size to be a multiple of the
// alignment (glibc tolerates other sizes; AddressSanitizer reports them, which is how this was
// found).
size_t Rounded(size_t size) {
  return size < kPooledMin ? (size + kAlign - 1) / kAlign * kAlign : (size + 4095) / 4096 * 4096;
}

}  // namespace

void* StepMalloc(void*, size_t size) {
  const size_t rounded = Rounded(size);
  if (rounded >= kPooledMin) {
    Pool& p = ThePool();
    std::lock_guard<std::mutex> lock(p.mu);
    auto it = p.free_blocks.find(rounded);
    if (it != p.free_blocks.end() && !it->second.empty()) {
      void* block = it->second.back();
      it->second.pop_back();
      p.held -= rounded;
      return static_cast<char*>(block) + kAlign;
    }
  }
  void* block = std::aligned_alloc(kAlign, rounded + kAlign);
  if (block == nullptr) return nullptr;
  *static_cast<size_t*>(block) = rounded;
  return static_cast<char*>(block) + kAlign;
}

void StepFree(void*, void* ptr) {
  if (ptr == nullptr) return;
  void* block = static_cast<char*>(ptr) - kAlign;
  const size_t rounded = *static_cast<size_t*>(block);
  if (rounded >= kPooledMin) {
    Pool& p = ThePool();
    std::lock_guard<std::mutex> lock(p.mu);
    if (p.held + rounded <= kPoolCap) {
      p.free_blocks[rounded].push_back(block);
      p.held += rounded;
      return;
    }
  }
  std::free(block);
}

size_t StepPoolBytes() {
  Pool& p = ThePool();
  std::lock_guard<std::mutex> lock(p.mu);
  return p.held;
}

}  // namespace kiln
