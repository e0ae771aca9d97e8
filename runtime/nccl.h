// NCCL for device buffers: data-parallel training's gradient sum on NVIDIA GPUs, one rank per GPU.
// libnccl is loaded at run time (dlopen), like libcuda, never linked: programs start on machines
// without it. The ranks find each other through the host communicator (MPI): rank 0's
// ncclUniqueId is broadcast through it.
//
// Context and stream: NCCL selects devices through the CUDA runtime, so it works in a device's
// primary context. Create makes device `device`'s primary context current and publishes it
// (SharedCudaContext, runtime/cuda_device.h); Halide's CUDA runtime must then acquire that same
// context: the JIT's handlers (compiler/jit.h, UseSharedCudaContext), cached steps' and AOT
// binaries' runtimes (halide_set_cuda_acquire_context, runtime/native_step.cc, aot_main.cc). Both
// sides use the default stream; each collective returns once the device finished it.
//
//   KILN_ASSIGN_OR_RETURN(auto nccl, kiln::NcclCommunicator::Create(*mpi, mpi->local_rank()));
//   trainer.set_device_communicator(nccl.get());
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/communicator.h"

namespace kiln {

struct NcclLibrary {
  std::string path;  // the library that loaded
  int version = 0;   // ncclGetVersion, e.g. 22809 for 2.28.9
};
// Loads NCCL: $KILN_NCCL_LIBRARY, else libnccl.so.2 on the loader path, else under the CUDA
// Toolkit's directories (/usr/local/cuda/lib*, /usr/local/cuda-*/lib*). Unavailable naming what
// was tried and why it failed.
absl::StatusOr<NcclLibrary> LoadNccl();

class NcclCommunicator : public Communicator {
 public:
  // One rank per GPU: `device` is this rank's GPU (its local rank); `host` carries the unique id.
  // Unavailable when NCCL or CUDA cannot be used here (no library, no device), with the reason.
  static absl::StatusOr<std::unique_ptr<NcclCommunicator>> Create(Communicator& host, int device);
  ~NcclCommunicator() override;

  int rank() const override { return host_.rank(); }
  int size() const override { return host_.size(); }
  int local_rank() const override { return host_.local_rank(); }
  int local_size() const override { return host_.local_size(); }
  std::string backend() const override;
  // `data` is a device address (CUdeviceptr) in the shared context.
  absl::Status AllReduceSum(void* data, int64_t n, ScalarType type) override;
  // One NCCL group: every span summed in one launch.
  absl::Status AllReduceSumMany(const std::vector<Span>& spans) override;
  // Host-memory collectives belong to the host communicator.
  absl::Status Broadcast(void*, int64_t, int) override;
  absl::Status AllGather(const void*, int64_t, void*) override;

  struct Api;  // the loaded library (nccl.cc)

 private:
  NcclCommunicator(Communicator& host, std::unique_ptr<Api> api);
  Communicator& host_;
  std::unique_ptr<Api> api_;
  void* comm_ = nullptr;  // ncclComm_t
  int device_ = 0;
};

}  // namespace kiln
