#include "runtime/native_step.h"

#include <dlfcn.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "HalideRuntime.h"
#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "runtime/cuda_device.h"
#include "runtime/device_tensors.h"
#include "runtime/step_allocator.h"
#include "runtime/step_threads.h"

namespace kiln {
namespace {

absl::Status CheckMetadata(const Signature& sig, const halide_filter_metadata_t* md) {
  if (md == nullptr) return absl::FailedPreconditionError("the compiled step has no metadata");
  const size_t n = sig.inputs.size() + sig.outputs.size();
  if (md->num_arguments < 0 || static_cast<size_t>(md->num_arguments) != n) {
    return absl::FailedPreconditionError(absl::StrCat("the compiled step takes ", md->num_arguments,
                                                      " arguments, the model ", n,
                                                      ": it was compiled for another model"));
  }
  for (size_t i = 0; i < n; ++i) {
    const bool in = i < sig.inputs.size();
    const ArgSpec& s = in ? sig.inputs[i] : sig.outputs[i - sig.inputs.size()];
    const halide_filter_argument_t& a = md->arguments[i];
    const int kind = !in                ? halide_argument_kind_output_buffer
                     : PassedByValue(s) ? halide_argument_kind_input_scalar
                                        : halide_argument_kind_input_buffer;
    if (a.kind != kind || a.dimensions != static_cast<int>(s.shape.size()) ||
        !(a.type == HalideTypeOf(s.type))) {
      return absl::FailedPreconditionError(
          absl::StrCat("argument ", i, " of the compiled step ('", a.name ? a.name : "?",
                       "') does not match the model's '", s.name, "' (", ScalarTypeName(s.type),
                       ShapeString(s.shape), ", ", in ? "input" : "output",
                       "): it was compiled for another model"));
    }
  }
  return absl::OkStatus();
}

// Halide's runtime reports an error (a failed CUDA call, an allocation that failed) through its
// error handler, which by default prints the message and aborts the process. Kiln's handler
// keeps the message instead: the step returns its error code and Run() returns the message as
// a status, which the caller reports with the step's name (an AOT binary exits non-zero, a
// checkpoint written before it stays whole).
std::mutex halide_error_mu;
std::string* halide_error_text = new std::string;  // never destroyed: workers may report late
std::atomic<bool> halide_error_pending{false};     // a step call reads only this when all is well

extern "C" void KilnHalideError(void*, const char* msg) {
  std::lock_guard<std::mutex> lock(halide_error_mu);
  std::string m = msg ? msg : "";
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  if (!halide_error_text->empty()) *halide_error_text += "; ";
  *halide_error_text += m;
  halide_error_pending.store(true);
}

std::string TakeHalideError() {
  if (!halide_error_pending.load()) return "";
  std::lock_guard<std::mutex> lock(halide_error_mu);
  halide_error_pending.store(false);
  std::string m;
  m.swap(*halide_error_text);
  return m;
}

extern "C" halide_error_handler_t halide_set_error_handler(halide_error_handler_t)
    __attribute__((weak));

// Installs KilnHalideError in the runtime linked into this program (an AOT binary), once.
void KeepHalideErrors() {
  static std::once_flag once;
  std::call_once(once, [] {
    using Fn = halide_error_handler_t (*)(halide_error_handler_t);
    Fn fn = &halide_set_error_handler;
    if (fn == nullptr) fn = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "halide_set_error_handler"));
    if (fn != nullptr) fn(KilnHalideError);
  });
}

class NativeExecutable : public Executable {
 public:
  NativeExecutable(Signature sig, NativeStepFn fn, std::shared_ptr<void> keepalive, double s)
      : sig_(std::move(sig)), fn_(fn), keepalive_(std::move(keepalive)), compile_s_(s) {
    const size_t n = sig_.inputs.size() + sig_.outputs.size();
    bufs_.resize(n);
    dims_.resize(n);
    argv_.resize(n);
    resident_.assign(n, nullptr);
    for (size_t i = 0; i < n; ++i) {
      const ArgSpec& a =
          i < sig_.inputs.size() ? sig_.inputs[i] : sig_.outputs[i - sig_.inputs.size()];
      // Halide's dim 0 is the innermost (row-major last) axis.
      int64_t stride = 1;
      for (int d = static_cast<int>(a.shape.size()) - 1; d >= 0; --d) {
        dims_[i].push_back({0, static_cast<int32_t>(a.shape[d]), static_cast<int32_t>(stride), 0});
        stride *= a.shape[d];
      }
      halide_buffer_t& b = bufs_[i];
      b = halide_buffer_t();
      b.type = HalideTypeOf(a.type);
      b.dimensions = static_cast<int32_t>(dims_[i].size());
      b.dim = dims_[i].empty() ? nullptr : dims_[i].data();
      argv_[i] = &b;
    }
  }

  const Signature& signature() const override { return sig_; }
  double compile_seconds() const override { return compile_s_; }

  absl::Status Run(const std::vector<TensorRef>& inputs,
                   const std::vector<TensorRef>& outputs) override {
    if (absl::Status s = CheckArguments(sig_, inputs, outputs); !s.ok()) return s;
    const size_t n_in = inputs.size();
    for (size_t i = 0; i < n_in + outputs.size(); ++i) {
      const bool out = i >= n_in;
      const TensorRef& r = out ? outputs[i - n_in] : inputs[i];
      if (!out && PassedByValue(sig_.inputs[i])) {
        argv_[i] = r.data;  // Halide reads the value itself
        continue;
      }
      resident_[i] = device_tensors_ ? device_tensors_->Prepare(r, out) : nullptr;
      if (resident_[i] != nullptr) {
        argv_[i] = resident_[i];
        continue;
      }
      halide_buffer_t& b = bufs_[i];
      b.host = static_cast<uint8_t*>(r.data);
      b.device = 0;
      b.device_interface = nullptr;
      b.flags = 0;
      b.set_host_dirty(on_device_ && !out);  // a device step uploads it
      argv_[i] = &b;
    }
    TakeHalideError();  // a message left by an earlier call is not this call's
    const int rc = fn_(argv_.data());
    absl::Status status;
    if (rc != 0) {
      const std::string why = TakeHalideError();
      status = absl::InternalError(absl::StrCat("the compiled step failed with Halide error ", rc,
                                                why.empty() ? "" : ": ", why));
    }
    for (size_t i = 0; i < n_in + outputs.size(); ++i) {
      const bool out = i >= n_in;
      if (!out && PassedByValue(sig_.inputs[i])) continue;
      if (resident_[i] != nullptr) {
        if (out && rc == 0) device_tensors_->DeviceWrote(outputs[i - n_in].data);
        continue;
      }
      if (!on_device_) continue;
      if (out && rc == 0) {
        if (int c = HalideCopyToHost(&bufs_[i]); c != 0 && status.ok()) {
          status =
              absl::InternalError(absl::StrCat("copying output '", sig_.outputs[i - n_in].name,
                                               "' from the device failed with Halide error ", c));
        }
      }
      HalideDeviceFree(&bufs_[i]);  // back to Halide's allocation cache
    }
    return status;
  }

 private:
  Signature sig_;
  NativeStepFn fn_;
  std::shared_ptr<void> keepalive_;
  double compile_s_;
  std::vector<halide_buffer_t> bufs_;
  std::vector<std::vector<halide_dimension_t>> dims_;
  std::vector<void*> argv_;
  std::vector<halide_buffer_t*> resident_;  // this call's device-resident arguments
};

// Halide's runtime switch for keeping freed device allocations for reuse (about 3x fewer
// allocations in Halide's own GPU apps). Weak: a step without a GPU runtime does not need it; a
// compile-cache runtime loaded with dlopen is found through dlsym.
extern "C" int halide_reuse_device_allocations(void* user_context, bool) __attribute__((weak));

void ReuseDeviceAllocations() {
  using Fn = int (*)(void*, bool);
  Fn fn = &halide_reuse_device_allocations;
  if (fn == nullptr)
    fn = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "halide_reuse_device_allocations"));
  if (fn != nullptr) fn(nullptr, true);
}

constexpr uint64_t kMagic = 0x31656863614b4c4bULL;  // "KLKache1"
constexpr size_t kTrailer = 24;                     // hash, length, magic

absl::StatusOr<std::string> ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) return absl::DataLossError(absl::StrCat(path, ": read error"));
  return bytes;
}

}  // namespace

halide_type_t HalideTypeOf(ScalarType t) {
  switch (t) {
    case ScalarType::kF32:
      return halide_type_t(halide_type_float, 32);
    case ScalarType::kF64:
      return halide_type_t(halide_type_float, 64);
    case ScalarType::kI32:
      return halide_type_t(halide_type_int, 32);
    case ScalarType::kU8:
      return halide_type_t(halide_type_uint, 8);
  }
  return halide_type_t(halide_type_float, 32);
}

uint64_t ContentHash(const void* data, size_t size) {
  uint64_t h = 0xcbf29ce484222325ULL;
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}

absl::Status SealCacheFile(const std::string& path) {
  auto bytes = ReadAll(path);
  if (!bytes.ok()) return bytes.status();
  uint64_t trailer[3] = {ContentHash(bytes->data(), bytes->size()), bytes->size(), kMagic};
  std::ofstream f(path, std::ios::binary | std::ios::app);
  f.write(reinterpret_cast<const char*>(trailer), sizeof(trailer));
  f.close();
  if (!f) return absl::DataLossError(absl::StrCat(path, ": cannot write the trailer"));
  return absl::OkStatus();
}

absl::Status VerifyCacheFile(const std::string& path) {
  auto bytes = ReadAll(path);
  if (!bytes.ok()) return bytes.status();
  if (bytes->size() < kTrailer) {
    return absl::DataLossError(
        absl::StrCat(path, ": ", bytes->size(), " bytes, too short for a Kiln cache file"));
  }
  uint64_t trailer[3];
  std::memcpy(trailer, bytes->data() + bytes->size() - kTrailer, kTrailer);
  const size_t body = bytes->size() - kTrailer;
  if (trailer[2] != kMagic || trailer[1] != body) {
    return absl::DataLossError(
        absl::StrCat(path, ": not a complete Kiln cache file (bad trailer)"));
  }
  if (trailer[0] != ContentHash(bytes->data(), body)) {
    return absl::DataLossError(absl::StrCat(path, ": content hash mismatch (corrupt)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Executable>> MakeNativeExecutable(Signature sig, NativeStepFn fn,
                                                                 NativeMetadataFn metadata,
                                                                 std::shared_ptr<void> keepalive,
                                                                 double compile_seconds) {
  if (fn == nullptr || metadata == nullptr) {
    return absl::InvalidArgumentError("a native step needs its argv and metadata functions");
  }
  const halide_filter_metadata_t* md = metadata();
  if (absl::Status s = CheckMetadata(sig, md); !s.ok()) return s;
  KeepHalideErrors();
  auto exe =
      std::make_unique<NativeExecutable>(std::move(sig), fn, std::move(keepalive), compile_seconds);
  // The target the step was compiled for, e.g. "x86-64-linux-avx2-cuda-cuda_capability_70".
  const std::string target = md->target ? md->target : "";
  if (target.find("-cuda") != std::string::npos) {
    exe->set_on_device(true);
    ReuseDeviceAllocations();
  }
  return std::unique_ptr<Executable>(std::move(exe));
}

absl::Status LoadHalideRuntime(const std::string& path) {
  static std::mutex mu;
  static std::set<std::string> loaded;
  std::lock_guard<std::mutex> lock(mu);
  if (loaded.count(path)) return absl::OkStatus();
  KILN_RETURN_IF_ERROR(VerifyCacheFile(path));
  // Never closed: the runtime's thread pool lives as long as the process.
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (h == nullptr) {
    const char* err = dlerror();
    return absl::FailedPreconditionError(absl::StrCat(path, ": ", err ? err : "dlopen failed"));
  }
  // Route the steps' scratch memory through the pool (the runtime's hooks, found by name).
  using SetMalloc = halide_malloc_t (*)(halide_malloc_t);
  using SetFree = halide_free_t (*)(halide_free_t);
  auto set_malloc = reinterpret_cast<SetMalloc>(dlsym(h, "halide_set_custom_malloc"));
  auto set_free = reinterpret_cast<SetFree>(dlsym(h, "halide_set_custom_free"));
  if (set_malloc && set_free) {
    set_malloc(StepMalloc);
    set_free(StepFree);
  }
  // Errors come back as statuses (KilnHalideError above), not as an abort.
  using SetError = halide_error_handler_t (*)(halide_error_handler_t);
  if (auto set_error = reinterpret_cast<SetError>(dlsym(h, "halide_set_error_handler"))) {
    set_error(KilnHalideError);
  }
  // Parallel loops run on Kiln's threads (runtime/step_threads.h).
  using SetParFor = halide_do_par_for_t (*)(halide_do_par_for_t);
  auto set_par_for = reinterpret_cast<SetParFor>(dlsym(h, "halide_set_custom_do_par_for"));
  if (set_par_for != nullptr) set_par_for(StepDoParFor);
  // A CUDA runtime acquires the context NCCL works in, when there is one (runtime/nccl.h).
  using AcquireFn = int (*)(void*, void**, bool);
  using SetAcquire = AcquireFn (*)(AcquireFn);
  auto set_acquire = reinterpret_cast<SetAcquire>(dlsym(h, "halide_set_cuda_acquire_context"));
  if (set_acquire != nullptr && SharedCudaContext() != nullptr) {
    set_acquire(KilnAcquireSharedCudaContext);
  }
  loaded.insert(path);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Executable>> LoadCachedStep(const std::string& path, Signature sig,
                                                           double compile_seconds) {
  if (absl::Status s = VerifyCacheFile(path); !s.ok()) return s;
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* err = dlerror();
    return absl::FailedPreconditionError(absl::StrCat(path, ": ", err ? err : "dlopen failed"));
  }
  // Never dlclose'd (a process loads a handful of steps): the shared runtime's worker threads may
  // still hold the step's loop bodies when the executable goes away.
  std::shared_ptr<void> keep(handle, [](void*) {});
  const std::string name = kNativeStepName;
  auto fn = reinterpret_cast<NativeStepFn>(dlsym(handle, (name + "_argv").c_str()));
  auto md = reinterpret_cast<NativeMetadataFn>(dlsym(handle, (name + "_metadata").c_str()));
  if (fn == nullptr || md == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": no ", name, "_argv/_metadata entry point"));
  }
  auto exe = MakeNativeExecutable(std::move(sig), fn, md, std::move(keep), compile_seconds);
  if (!exe.ok()) {
    return absl::Status(exe.status().code(), absl::StrCat(path, ": ", exe.status().message()));
  }
  return exe;
}

}  // namespace kiln
