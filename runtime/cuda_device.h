// The NVIDIA device, asked through the CUDA driver API. libcuda is loaded at run time (dlopen),
// never linked, so every Kiln program runs on machines without a GPU; the driver API's header
// comes from the CUDA Toolkit at build time (without it the query answers Unavailable).
//
//   absl::StatusOr<kiln::CudaDevice> d = kiln::QueryCudaDevice();
//   if (d.ok()) printf("%s, compute capability %d\n", d->name.c_str(), d->capability);
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace kiln {

struct CudaDevice {
  std::string name;          // e.g. "NVIDIA H200"
  int capability = 0;        // major * 10 + minor, e.g. 90
  int64_t memory_bytes = 0;  // total device memory
  int driver_version = 0;    // e.g. 13000 for CUDA 13.0
  int count = 0;             // devices present (device 0 is described)
  std::string library;       // the libcuda that answered
};

// Device 0. Unavailable, with the reason, when there is no driver library, the driver fails to
// initialize, there is no device, or Kiln was built without the CUDA Toolkit's header.
// $KILN_LIBCUDA names the driver library to load instead of libcuda.so.1 (tests).
absl::StatusOr<CudaDevice> QueryCudaDevice();

// One line for logs: "NVIDIA H200 (compute capability 9.0, 139.8 GiB, driver 13.0)".
std::string DescribeCudaDevice(const CudaDevice& d);

// Device `ordinal`'s primary context (the one the CUDA runtime, and so NCCL, works in), retained
// and made current on this thread. Unavailable with the reason.
absl::StatusOr<void*> RetainPrimaryContext(int ordinal);
// Waits until the current context's work is done (cuCtxSynchronize).
absl::Status SynchronizeCudaContext();

// The CUDA context every Halide runtime of this process must use when another library (NCCL)
// works on the same buffers; null (the default) leaves Halide to create its own. Set it before
// the first step is compiled or loaded.
void SetSharedCudaContext(void* ctx);
void* SharedCudaContext();
// Halide's acquire-context hook answering SharedCudaContext() (for halide_set_cuda_acquire_context
// in cached and AOT steps' runtimes; the JIT's handlers call it too). Returns 0, or -1 when no
// context is shared.
extern "C" int KilnAcquireSharedCudaContext(void* user_context, void** ctx, bool create);

}  // namespace kiln
