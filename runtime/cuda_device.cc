#include "runtime/cuda_device.h"

#include <dlfcn.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status.h"

#ifdef KILN_HAVE_CUDA_H
#include <cuda.h>
#endif

namespace kiln {

namespace {
void* g_shared_context = nullptr;
}  // namespace

void SetSharedCudaContext(void* ctx) { g_shared_context = ctx; }
void* SharedCudaContext() { return g_shared_context; }

extern "C" int KilnAcquireSharedCudaContext(void*, void** ctx, bool) {
  if (g_shared_context == nullptr) return -1;
  *ctx = g_shared_context;
  return 0;
}

std::string DescribeCudaDevice(const CudaDevice& d) {
  return absl::StrFormat("%s (compute capability %d.%d, %.1f GiB, driver %d.%d)", d.name,
                         d.capability / 10, d.capability % 10,
                         static_cast<double>(d.memory_bytes) / (1 << 30), d.driver_version / 1000,
                         d.driver_version % 1000 / 10);
}

#ifndef KILN_HAVE_CUDA_H

absl::StatusOr<CudaDevice> QueryCudaDevice() {
  return absl::UnavailableError(
      "CUDA is unavailable: Kiln was built without the CUDA Toolkit's cuda.h (configure found no "
      "toolkit), so it cannot query a device");
}
absl::StatusOr<void*> RetainPrimaryContext(int) { return QueryCudaDevice().status(); }
absl::Status SynchronizeCudaContext() { return QueryCudaDevice().status(); }

#else

namespace {

// The driver entry points Kiln uses, by their exported names.
struct Driver {
  decltype(&cuInit) init;
  decltype(&cuDriverGetVersion) version;
  decltype(&cuDeviceGetCount) count;
  decltype(&cuDeviceGet) get;
  decltype(&cuDeviceGetName) name;
  decltype(&cuDeviceGetAttribute) attribute;
  decltype(&cuDeviceTotalMem) total_mem;
  decltype(&cuGetErrorName) error_name;
  decltype(&cuDevicePrimaryCtxRetain) primary_retain;
  decltype(&cuCtxSetCurrent) set_current;
  decltype(&cuCtxSynchronize) synchronize;
};

std::string ErrorText(const Driver& d, CUresult r) {
  const char* name = nullptr;
  if (d.error_name == nullptr || d.error_name(r, &name) != CUDA_SUCCESS || name == nullptr) {
    return absl::StrCat("CUDA error ", static_cast<int>(r));
  }
  return absl::StrCat(name, " (", static_cast<int>(r), ")");
}

absl::Status LoadDriverFrom(const std::string& lib, Driver& d) {
  // Never closed: Halide's CUDA runtime opens the same library and keeps it.
  void* h = dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    const char* err = dlerror();
    return absl::UnavailableError(
        absl::StrCat("CUDA is unavailable: cannot load the NVIDIA driver (", lib,
                     "): ", err ? err : "not found"));
  }
  d.init = reinterpret_cast<decltype(d.init)>(dlsym(h, "cuInit"));
  d.version = reinterpret_cast<decltype(d.version)>(dlsym(h, "cuDriverGetVersion"));
  d.count = reinterpret_cast<decltype(d.count)>(dlsym(h, "cuDeviceGetCount"));
  d.get = reinterpret_cast<decltype(d.get)>(dlsym(h, "cuDeviceGet"));
  d.name = reinterpret_cast<decltype(d.name)>(dlsym(h, "cuDeviceGetName"));
  d.attribute = reinterpret_cast<decltype(d.attribute)>(dlsym(h, "cuDeviceGetAttribute"));
  d.total_mem = reinterpret_cast<decltype(d.total_mem)>(dlsym(h, "cuDeviceTotalMem_v2"));
  d.error_name = reinterpret_cast<decltype(d.error_name)>(dlsym(h, "cuGetErrorName"));
  d.primary_retain =
      reinterpret_cast<decltype(d.primary_retain)>(dlsym(h, "cuDevicePrimaryCtxRetain"));
  d.set_current = reinterpret_cast<decltype(d.set_current)>(dlsym(h, "cuCtxSetCurrent"));
  d.synchronize = reinterpret_cast<decltype(d.synchronize)>(dlsym(h, "cuCtxSynchronize"));
  if (!d.init || !d.version || !d.count || !d.get || !d.name || !d.attribute || !d.total_mem) {
    return absl::UnavailableError(
        absl::StrCat("CUDA is unavailable: ", lib, " lacks driver API entry points"));
  }
  if (CUresult r = d.init(0); r != CUDA_SUCCESS) {
    return absl::UnavailableError(
        absl::StrCat("CUDA is unavailable: cuInit failed with ", ErrorText(d, r), " (", lib, ")"));
  }
  return absl::OkStatus();
}

// The driver ($KILN_LIBCUDA, else libcuda.so.1), loaded and initialized once per library.
absl::StatusOr<const Driver*> LoadDriver(std::string* library) {
  static std::mutex mu;
  static std::map<std::string, std::pair<Driver, absl::Status> > loaded;
  const char* env = std::getenv("KILN_LIBCUDA");
  const std::string lib = env != nullptr && env[0] != '\0' ? env : "libcuda.so.1";
  if (library) *library = lib;
  std::lock_guard<std::mutex> lock(mu);
  auto it = loaded.find(lib);
  if (it == loaded.end()) {
    Driver d{};
    absl::Status st = LoadDriverFrom(lib, d);
    it = loaded.emplace(lib, std::make_pair(d, st)).first;
  }
  if (!it->second.second.ok()) return it->second.second;
  return &it->second.first;
}

}  // namespace

absl::StatusOr<CudaDevice> QueryCudaDevice() {
  std::string lib;
  KILN_ASSIGN_OR_RETURN(const Driver* dp, LoadDriver(&lib));
  const Driver& d = *dp;
  CudaDevice out;
  out.library = lib;
  d.version(&out.driver_version);
  if (CUresult r = d.count(&out.count); r != CUDA_SUCCESS || out.count == 0) {
    return absl::UnavailableError(
        absl::StrCat("CUDA is unavailable: no CUDA device (", ErrorText(d, r), ")"));
  }
  CUdevice dev;
  if (CUresult r = d.get(&dev, 0); r != CUDA_SUCCESS) {
    return absl::UnavailableError(absl::StrCat("CUDA is unavailable: ", ErrorText(d, r)));
  }
  char name[256] = {};
  d.name(name, sizeof(name) - 1, dev);
  out.name = name;
  int major = 0, minor = 0;
  d.attribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev);
  d.attribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev);
  out.capability = major * 10 + minor;
  size_t bytes = 0;
  d.total_mem(&bytes, dev);
  out.memory_bytes = static_cast<int64_t>(bytes);
  return out;
}

absl::StatusOr<void*> RetainPrimaryContext(int ordinal) {
  std::string lib;
  KILN_ASSIGN_OR_RETURN(const Driver* d, LoadDriver(&lib));
  if (!d->primary_retain || !d->set_current) {
    return absl::UnavailableError(absl::StrCat(lib, " lacks cuDevicePrimaryCtxRetain"));
  }
  int count = 0;
  d->count(&count);
  if (ordinal < 0 || ordinal >= count) {
    return absl::UnavailableError(absl::StrCat("CUDA device ", ordinal, " does not exist (", count,
                                               " device", count == 1 ? "" : "s", ")"));
  }
  CUdevice dev;
  CUcontext ctx = nullptr;
  if (CUresult r = d->get(&dev, ordinal); r != CUDA_SUCCESS) {
    return absl::UnavailableError(absl::StrCat("cuDeviceGet(", ordinal, "): ", ErrorText(*d, r)));
  }
  if (CUresult r = d->primary_retain(&ctx, dev); r != CUDA_SUCCESS) {
    return absl::UnavailableError(
        absl::StrCat("cuDevicePrimaryCtxRetain(", ordinal, "): ", ErrorText(*d, r)));
  }
  if (CUresult r = d->set_current(ctx); r != CUDA_SUCCESS) {
    return absl::UnavailableError(absl::StrCat("cuCtxSetCurrent: ", ErrorText(*d, r)));
  }
  return static_cast<void*>(ctx);
}

absl::Status SynchronizeCudaContext() {
  KILN_ASSIGN_OR_RETURN(const Driver* d, LoadDriver(nullptr));
  if (!d->synchronize) return absl::UnavailableError("the driver lacks cuCtxSynchronize");
  if (CUresult r = d->synchronize(); r != CUDA_SUCCESS) {
    return absl::InternalError(absl::StrCat("cuCtxSynchronize: ", ErrorText(*d, r)));
  }
  return absl::OkStatus();
}

#endif

}  // namespace kiln
