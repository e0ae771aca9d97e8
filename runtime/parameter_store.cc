#include "runtime/parameter_store.h"

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "runtime/init.h"

namespace kiln {

absl::Status ParameterStore::Initialize(const Signature& sig, uint64_t seed) {
  device_.reset();
  slots_.clear();
  parity_ = 0;
  for (const ArgSpec& a : sig.inputs) {
    if (a.role != ArgRole::kParam && a.role != ArgRole::kState) continue;
    Slot s;
    s.spec = a;
    s.buf[0] = Tensor(a.type, a.shape);
    s.buf[1] = Tensor(a.type, a.shape);
    KILN_RETURN_IF_ERROR(InitializeTensor(a.name, a.init, seed, s.buf[0]));
    if (a.role == ArgRole::kState) s.buf[1] = s.buf[0];
    slots_.push_back(std::move(s));
  }
  return absl::OkStatus();
}

absl::Status ParameterStore::CheckReads(const Signature& sig, const char* step) const {
  for (const ArgSpec& a : sig.inputs) {
    if (a.role != ArgRole::kParam && a.role != ArgRole::kState) continue;
    const Slot* s = Find(a.name);
    if (s == nullptr || s->buf[0].shape() != a.shape || s->buf[0].type() != a.type) {
      return absl::InvalidArgumentError(absl::StrCat(
          step, " step ", ArgRoleName(a.role), " '", a.name, "' ", ScalarTypeName(a.type),
          ShapeString(a.shape), " does not match the parameters and state of the model"));
    }
  }
  return absl::OkStatus();
}

ParameterStore::Slot* ParameterStore::Find(const std::string& name) {
  for (Slot& s : slots_) {
    if (s.spec.name == name) return &s;
  }
  return nullptr;
}

const ParameterStore::Slot* ParameterStore::Find(const std::string& name) const {
  return const_cast<ParameterStore*>(this)->Find(name);
}

void ParameterStore::EnableDevice(DeviceTensors::Mode mode) {
  device_ = std::make_unique<DeviceTensors>(mode);
  for (Slot& s : slots_) {
    for (Tensor& t : s.buf) device_->Add(t.ref());
  }
}

absl::Status ParameterStore::ToHost(const Slot& s) const {
  if (device_ == nullptr) return absl::OkStatus();
  return device_->ToHost(Current(s).ref());
}

absl::Status ParameterStore::ToHost() const {
  for (const Slot& s : slots_) KILN_RETURN_IF_ERROR(ToHost(s));
  return absl::OkStatus();
}

void ParameterStore::HostWrote() {
  if (device_ == nullptr) return;
  for (Slot& s : slots_) {
    for (Tensor& t : s.buf) device_->HostWrote(t.ref());
  }
}

}  // namespace kiln
