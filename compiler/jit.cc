#include "compiler/jit.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "runtime/native_step.h"
#include "runtime/step_allocator.h"

namespace kiln {
namespace {

// Halide buffers wrapping caller memory, cached per data pointer: the runtime swaps between two
// parameter sets, so after the first two steps no Buffer is constructed again.
class BufferCache {
 public:
  Halide::Buffer<> Get(const TensorRef& r) {
    for (auto& [ptr, buf] : entries_) {
      if (ptr == r.data) return buf;
    }
    std::vector<halide_dimension_t> dims;
    int stride = 1;
    for (int d = static_cast<int>(r.shape.size()) - 1; d >= 0; --d) {
      dims.push_back({0, static_cast<int32_t>(r.shape[d]), stride, 0});
      stride *= static_cast<int>(r.shape[d]);
    }
    Halide::Buffer<> buf(HalideTypeOf(r.type), r.data, static_cast<int>(dims.size()), dims.data());
    if (entries_.size() >= 4) entries_.erase(entries_.begin());
    entries_.emplace_back(r.data, buf);
    return buf;
  }

 private:
  std::vector<std::pair<void*, Halide::Buffer<>>> entries_;
};

class JitExecutable : public Executable {
 public:
  JitExecutable(LoweredStep step, Signature sig, double compile_s)
      : step_(std::move(step)),
        sig_(std::move(sig)),
        compile_s_(compile_s),
        in_cache_(sig_.inputs.size()),
        out_cache_(sig_.outputs.size()) {}

  const Signature& signature() const override { return sig_; }
  double compile_seconds() const override { return compile_s_; }

  absl::Status Run(const std::vector<TensorRef>& inputs,
                   const std::vector<TensorRef>& outputs) override {
    if (absl::Status s = CheckArguments(sig_, inputs, outputs); !s.ok()) return s;
    try {
      for (size_t i = 0; i < inputs.size(); ++i) step_.inputs[i].set(in_cache_[i].Get(inputs[i]));
      std::vector<Halide::Buffer<>> outs;
      outs.reserve(outputs.size());
      for (size_t i = 0; i < outputs.size(); ++i) outs.push_back(out_cache_[i].Get(outputs[i]));
      step_.pipeline.realize(Halide::Realization(outs));
    } catch (const Halide::Error& e) {
      return absl::InternalError(absl::StrCat("running the compiled step failed: ", e.what()));
    }
    return absl::OkStatus();
  }

 private:
  LoweredStep step_;
  Signature sig_;
  double compile_s_;
  std::vector<BufferCache> in_cache_, out_cache_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Executable>> JitCompile(LoweredStep step, Signature signature,
                                                       const Halide::Target& target) {
  auto t0 = std::chrono::steady_clock::now();
  try {
    Halide::JITHandlers& h = step.pipeline.jit_handlers();
    h.custom_malloc = [](Halide::JITUserContext* c, size_t n) { return StepMalloc(c, n); };
    h.custom_free = [](Halide::JITUserContext* c, void* p) { StepFree(c, p); };
    step.pipeline.compile_jit(target);
  } catch (const Halide::Error& e) {
    return absl::InternalError(absl::StrCat("Halide JIT compilation failed: ", e.what()));
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return std::unique_ptr<Executable>(new JitExecutable(std::move(step), std::move(signature), s));
}

}  // namespace kiln
