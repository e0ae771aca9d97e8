// Tensors that live on the step's device across calls (GPU residency). The trainer registers what
// it owns (parameters, optimizer state, the training set, the shuffle order, the loss), steps then
// read and write the device copies, and the host copy is brought up to date only on request:
//
//   kiln::DeviceTensors dev;                 // or DeviceTensors::Mode::kEmulated in CPU tests
//   dev.Add(params.ref());                   // host copy current; uploaded by the first step
//   step->set_device_tensors(&dev);
//   step->Run(in, out);                      // resident arguments stay on the device
//   KILN_RETURN_IF_ERROR(dev.ToHost(loss.ref()));  // only when the value is needed
//   dev.HostWrote(order.ref());              // after the host changed a resident tensor
//
// kDevice hands Halide one persistent halide_buffer_t per tensor (device handle and dirty bits
// kept between calls). kEmulated runs the same protocol on the CPU: the "device" copy is a second
// host allocation, so a missing ToHost or HostWrote gives wrong values in tests instead of
// passing silently; it also counts the copies each way.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/tensor.h"

struct halide_buffer_t;

namespace kiln {

class DeviceTensors {
 public:
  enum class Mode { kDevice, kEmulated };
  explicit DeviceTensors(Mode mode = Mode::kDevice);
  ~DeviceTensors();  // frees every device copy
  DeviceTensors(const DeviceTensors&) = delete;
  DeviceTensors& operator=(const DeviceTensors&) = delete;

  Mode mode() const { return mode_; }
  // Registers `t` (its host copy holds the current values). Registering the same memory again
  // with the same shape is a no-op; with another shape it replaces the entry.
  void Add(const TensorRef& t);
  // Frees the device copy and forgets the tensor (its host copy is not updated).
  void Remove(const void* data);
  bool Contains(const void* data) const { return entries_.count(data) != 0; }

  // Brings the host copy up to date if the device holds newer values.
  absl::Status ToHost(const TensorRef& t);
  // The host copy changed: the next step uploads it.
  void HostWrote(const TensorRef& t);

  // For executables. The buffer to pass for `t`, or nullptr when its memory is not resident
  // with this type and shape (then it is an ordinary argument). In kEmulated mode its host
  // pointer is the stand-in device copy. An `output` is overwritten whole: its host values are
  // not uploaded first.
  halide_buffer_t* Prepare(const TensorRef& t, bool output);
  // After a step wrote resident output `data` (its device copy is now the newer one).
  void DeviceWrote(const void* data);
  // The device copy of resident `t` once a step wrote it (its device copy the newer one), for a
  // collective that changes it in place (it stays the newer copy): kDevice its device address
  // (a CUdeviceptr on CUDA), kEmulated the stand-in copy. FailedPrecondition otherwise.
  absl::StatusOr<void*> DeviceAddress(const TensorRef& t);

  // Copies made so far (kEmulated: exact; kDevice: uploads requested, downloads done).
  int64_t uploads() const { return uploads_; }
  int64_t downloads() const { return downloads_; }

 private:
  struct Entry;
  Mode mode_;
  std::map<const void*, std::unique_ptr<Entry>> entries_;
  int64_t uploads_ = 0, downloads_ = 0;
};

// Copies a device-dirty buffer back to host memory through its device interface (no-op when the
// host copy is current), and frees a buffer's device allocation. Both return Halide's error code.
int HalideCopyToHost(halide_buffer_t* b);
int HalideDeviceFree(halide_buffer_t* b);

}  // namespace kiln
