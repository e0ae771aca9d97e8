#include "runtime/device_tensors.h"

#include <cstring>

#include "HalideRuntime.h"
#include "absl/strings/str_cat.h"
#include "runtime/native_step.h"

namespace kiln {

struct DeviceTensors::Entry {
  TensorRef host;
  halide_buffer_t buf = {};
  std::vector<halide_dimension_t> dims;
  std::vector<uint8_t> shadow;  // kEmulated: the stand-in device copy
  enum class Newer { kNone, kHost, kDevice } newer = Newer::kHost;
};

int HalideCopyToHost(halide_buffer_t* b) {
  if (b->device_dirty() && b->device_interface != nullptr) {
    return b->device_interface->copy_to_host(nullptr, b);
  }
  return 0;
}

int HalideDeviceFree(halide_buffer_t* b) {
  if (b->device != 0 && b->device_interface != nullptr) {
    return b->device_interface->device_free(nullptr, b);
  }
  return 0;
}

DeviceTensors::DeviceTensors(Mode mode) : mode_(mode) {}

DeviceTensors::~DeviceTensors() {
  for (auto& [data, e] : entries_) HalideDeviceFree(&e->buf);
}

void DeviceTensors::Add(const TensorRef& t) {
  auto it = entries_.find(t.data);
  if (it != entries_.end()) {
    if (it->second->host.shape == t.shape && it->second->host.type == t.type) return;
    Remove(t.data);
  }
  auto e = std::make_unique<Entry>();
  e->host = t;
  int64_t stride = 1;
  for (int d = static_cast<int>(t.shape.size()) - 1; d >= 0; --d) {
    e->dims.push_back({0, static_cast<int32_t>(t.shape[d]), static_cast<int32_t>(stride), 0});
    stride *= t.shape[d];
  }
  e->buf.type = HalideTypeOf(t.type);
  e->buf.dimensions = static_cast<int32_t>(e->dims.size());
  e->buf.dim = e->dims.empty() ? nullptr : e->dims.data();
  if (mode_ == Mode::kEmulated) {
    e->shadow.resize(static_cast<size_t>(t.bytes()));
    e->buf.host = e->shadow.data();
  } else {
    e->buf.host = static_cast<uint8_t*>(t.data);
    e->buf.set_host_dirty(true);
  }
  e->newer = Entry::Newer::kHost;
  entries_[t.data] = std::move(e);
}

void DeviceTensors::Remove(const void* data) {
  auto it = entries_.find(data);
  if (it == entries_.end()) return;
  HalideDeviceFree(&it->second->buf);
  entries_.erase(it);
}

absl::Status DeviceTensors::ToHost(const TensorRef& t) {
  auto it = entries_.find(t.data);
  if (it == entries_.end()) return absl::OkStatus();  // not resident: the host copy is the copy
  Entry& e = *it->second;
  if (mode_ == Mode::kEmulated) {
    if (e.newer == Entry::Newer::kDevice) {
      std::memcpy(e.host.data, e.shadow.data(), e.shadow.size());
      ++downloads_;
      e.newer = Entry::Newer::kNone;
    }
    return absl::OkStatus();
  }
  if (e.buf.device_dirty()) {
    if (int rc = HalideCopyToHost(&e.buf); rc != 0) {
      return absl::InternalError(absl::StrCat("copying a ", ShapeString(t.shape),
                                              " tensor from the device failed (Halide error ", rc,
                                              ")"));
    }
    ++downloads_;
  }
  e.newer = Entry::Newer::kNone;
  return absl::OkStatus();
}

void DeviceTensors::HostWrote(const TensorRef& t) {
  auto it = entries_.find(t.data);
  if (it == entries_.end()) return;
  Entry& e = *it->second;
  e.newer = Entry::Newer::kHost;
  if (mode_ == Mode::kDevice) {
    e.buf.set_device_dirty(false);  // the host copy replaces whatever the device held
    e.buf.set_host_dirty(true);
  }
}

halide_buffer_t* DeviceTensors::Prepare(const TensorRef& t, bool output) {
  auto it = entries_.find(t.data);
  if (it == entries_.end()) return nullptr;
  Entry& e = *it->second;
  if (e.host.type != t.type || e.host.shape != t.shape) return nullptr;
  if (output) {
    e.buf.set_host_dirty(false);
    e.newer = Entry::Newer::kNone;
  } else if (e.newer == Entry::Newer::kHost) {
    ++uploads_;
    if (mode_ == Mode::kEmulated) std::memcpy(e.shadow.data(), e.host.data, e.shadow.size());
    e.newer = Entry::Newer::kNone;  // kDevice: host_dirty is set; the step uploads it
  }
  return &e.buf;
}

absl::StatusOr<void*> DeviceTensors::DeviceAddress(const TensorRef& t) {
  auto it = entries_.find(t.data);
  if (it == entries_.end() || it->second->newer != Entry::Newer::kDevice) {
    return absl::FailedPreconditionError(absl::StrCat(
        "a ", ShapeString(t.shape), " tensor has no device copy newer than its host copy"));
  }
  Entry& e = *it->second;
  if (mode_ == Mode::kEmulated) return static_cast<void*>(e.shadow.data());
  if (e.buf.device == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("a ", ShapeString(t.shape), " tensor has no device allocation"));
  }
  return reinterpret_cast<void*>(static_cast<uintptr_t>(e.buf.device));
}

void DeviceTensors::DeviceWrote(const void* data) {
  auto it = entries_.find(data);
  if (it != entries_.end()) it->second->newer = Entry::Newer::kDevice;
}

}  // namespace kiln
