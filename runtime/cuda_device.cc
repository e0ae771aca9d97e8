#include "runtime/cuda_device.h"

#include <dlfcn.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

#ifdef KILN_HAVE_CUDA_H
#include <cuda.h>
#endif

namespace kiln {

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
};

std::string ErrorText(const Driver& d, CUresult r) {
  const char* name = nullptr;
  if (d.error_name == nullptr || d.error_name(r, &name) != CUDA_SUCCESS || name == nullptr) {
    return absl::StrCat("CUDA error ", static_cast<int>(r));
  }
  return absl::StrCat(name, " (", static_cast<int>(r), ")");
}

}  // namespace

absl::StatusOr<CudaDevice> QueryCudaDevice() {
  const char* env = std::getenv("KILN_LIBCUDA");
  const std::string lib = env != nullptr && env[0] != '\0' ? env : "libcuda.so.1";
  // Never closed: Halide's CUDA runtime opens the same library and keeps it.
  void* h = dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    const char* err = dlerror();
    return absl::UnavailableError(
        absl::StrCat("CUDA is unavailable: cannot load the NVIDIA driver (", lib,
                     "): ", err ? err : "not found"));
  }
  Driver d;
  d.init = reinterpret_cast<decltype(d.init)>(dlsym(h, "cuInit"));
  d.version = reinterpret_cast<decltype(d.version)>(dlsym(h, "cuDriverGetVersion"));
  d.count = reinterpret_cast<decltype(d.count)>(dlsym(h, "cuDeviceGetCount"));
  d.get = reinterpret_cast<decltype(d.get)>(dlsym(h, "cuDeviceGet"));
  d.name = reinterpret_cast<decltype(d.name)>(dlsym(h, "cuDeviceGetName"));
  d.attribute = reinterpret_cast<decltype(d.attribute)>(dlsym(h, "cuDeviceGetAttribute"));
  d.total_mem = reinterpret_cast<decltype(d.total_mem)>(dlsym(h, "cuDeviceTotalMem_v2"));
  d.error_name = reinterpret_cast<decltype(d.error_name)>(dlsym(h, "cuGetErrorName"));
  if (!d.init || !d.version || !d.count || !d.get || !d.name || !d.attribute || !d.total_mem) {
    return absl::UnavailableError(
        absl::StrCat("CUDA is unavailable: ", lib, " lacks driver API entry points"));
  }
  if (CUresult r = d.init(0); r != CUDA_SUCCESS) {
    return absl::UnavailableError(
        absl::StrCat("CUDA is unavailable: cuInit failed with ", ErrorText(d, r), " (", lib, ")"));
  }
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

#endif

}  // namespace kiln
