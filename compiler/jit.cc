#include "compiler/jit.h"

#include <atomic>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "runtime/cuda_device.h"
#include "runtime/native_step.h"
#include "runtime/step_allocator.h"
#include "runtime/step_threads.h"

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
    // Resident arguments: a Halide::Buffer over the registered halide_buffer_t for this call,
    // its device handle and dirty bits written back afterwards.
    std::vector<std::pair<halide_buffer_t*, Halide::Buffer<>>> resident;
    auto bind = [&](const TensorRef& r, bool output, BufferCache& cache) -> Halide::Buffer<> {
      halide_buffer_t* b = device_tensors_ ? device_tensors_->Prepare(r, output) : nullptr;
      if (b == nullptr) {
        Halide::Buffer<> buf = cache.Get(r);
        // A device step uploads a non-resident input on every call (Halide's wrappers start
        // with host_dirty clear, and a cleared flag would skip the copy).
        if (on_device_ && !output) buf.raw_buffer()->set_host_dirty(true);
        return buf;
      }
      if (!on_device_) {  // emulated: the stand-in copy is plain host memory
        return cache.Get(TensorRef{b->host, r.type, r.shape});
      }
      resident.emplace_back(b, Halide::Buffer<>(*b));
      return resident.back().second;
    };
    // The registry owns resident device memory: the wrappers must let go of it (a wrapper made
    // while the handle was still 0 would otherwise free what the pipeline allocated).
    auto release_wrappers = [&] {
      for (auto& [raw, buf] : resident) {
        buf.raw_buffer()->device = 0;
        buf.raw_buffer()->device_interface = nullptr;
      }
    };
    try {
      std::vector<Halide::Buffer<>> ins(inputs.size());
      for (size_t i = 0; i < inputs.size(); ++i) {
        LoweredInput& in = step_.inputs[i];
        if (in.buffer) {
          ins[i] = bind(inputs[i], false, in_cache_[i]);
          in.buffer->set(ins[i]);
          continue;
        }
        switch (inputs[i].type) {
          case ScalarType::kF32:
            in.scalar->set(*static_cast<const float*>(inputs[i].data));
            break;
          case ScalarType::kF64:
            in.scalar->set(*static_cast<const double*>(inputs[i].data));
            break;
          case ScalarType::kI32:
            in.scalar->set(*static_cast<const int32_t*>(inputs[i].data));
            break;
          case ScalarType::kU8:
            in.scalar->set(*static_cast<const uint8_t*>(inputs[i].data));
            break;
        }
      }
      std::vector<Halide::Buffer<>> outs;
      outs.reserve(outputs.size());
      for (size_t i = 0; i < outputs.size(); ++i) {
        outs.push_back(bind(outputs[i], true, out_cache_[i]));
      }
      step_.pipeline.realize(Halide::Realization(outs));
      for (auto& [raw, buf] : resident) {
        raw->device = buf.raw_buffer()->device;
        raw->device_interface = buf.raw_buffer()->device_interface;
        raw->flags = buf.raw_buffer()->flags;
      }
      release_wrappers();
      if (device_tensors_ != nullptr) {
        for (const TensorRef& r : outputs) device_tensors_->DeviceWrote(r.data);
      }
      if (on_device_) {  // arguments that are not resident go back to the host and free
        for (size_t i = 0; i < outs.size(); ++i) {
          if (device_tensors_ && device_tensors_->Contains(outputs[i].data)) continue;
          outs[i].copy_to_host();
          outs[i].device_free();
        }
        for (size_t i = 0; i < ins.size(); ++i) {
          if (!ins[i].defined() || (device_tensors_ && device_tensors_->Contains(inputs[i].data))) {
            continue;
          }
          ins[i].device_free();
        }
      }
    } catch (const Halide::Error& e) {
      for (auto& [raw, buf] :
           resident) {  // keep what the pipeline allocated, owned by the registry
        raw->device = buf.raw_buffer()->device;
        raw->device_interface = buf.raw_buffer()->device_interface;
      }
      release_wrappers();
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
    // Parallel loops on Kiln's threads (runtime/step_threads.h), as in cached steps and AOT.
    h.custom_do_par_for = [](Halide::JITUserContext* c,
                             int (*f)(Halide::JITUserContext*, int, uint8_t*), int min, int size,
                             uint8_t* closure) {
      return StepDoParFor(c, reinterpret_cast<StepTask>(f), min, size, closure);
    };
    if (target.has_feature(Halide::Target::CUDA) && SharedCudaContext() != nullptr) {
      // NCCL works in this context: Halide's kernels and buffers must live in it too. The
      // process-wide handlers serve buffer copies and frees made outside a pipeline call.
      h.custom_cuda_acquire_context = [](Halide::JITUserContext* c, void** ctx, bool create) {
        return KilnAcquireSharedCudaContext(c, ctx, create);
      };
      Halide::JITHandlers shared;
      shared.custom_cuda_acquire_context = h.custom_cuda_acquire_context;
      Halide::Internal::JITSharedRuntime::set_default_handlers(shared);
    }
    step.pipeline.compile_jit(target);
  } catch (const Halide::Error& e) {
    return absl::InternalError(absl::StrCat("Halide JIT compilation failed: ", e.what()));
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto exe = std::make_unique<JitExecutable>(std::move(step), std::move(signature), s);
  if (target.has_gpu_feature()) {
    exe->set_on_device(true);
    Halide::Internal::JITSharedRuntime::reuse_device_allocations(true);
  }
  return std::unique_ptr<Executable>(std::move(exe));
}

JitRuntimeWarmup::JitRuntimeWarmup(const Halide::Target& target) {
  static std::atomic<bool> started{false};
  if (target.has_gpu_feature() || started.exchange(true)) return;
  thread_ = std::thread([target] {
    try {
      Halide::Func f("kiln_jit_runtime_warmup");
      Halide::Var x("x");
      f(x) = x;
      f.compile_jit(target);
    } catch (const Halide::Error&) {
      // The step's own compilation builds the runtime, and reports what fails.
    }
  });
}

JitRuntimeWarmup::~JitRuntimeWarmup() {
  if (thread_.joinable()) thread_.join();
}

}  // namespace kiln
