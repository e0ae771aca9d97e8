#include "runtime/epoch_meter.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace kiln {

EpochMeter::EpochMeter(const Signature& sig, ParameterStore& store, bool resident)
    : store_(store), resident_(resident) {
  for (size_t k = 0; k < sig.outputs.size(); ++k) {
    const ArgSpec& a = sig.outputs[k];
    if (a.role != ArgRole::kLoss && a.role != ArgRole::kMetric) continue;
    Scalar s{&a, Tensor(a.type, a.shape)};
    for (ParameterStore::Slot& slot : store.slots()) {
      if (slot.spec.kind == ArgKind::kRunningSum && slot.spec.sums == static_cast<int>(k)) {
        s.sum = &slot;
      }
    }
    if (a.role == ArgRole::kLoss) {
      scalars_.insert(scalars_.begin(), std::move(s));
    } else {
      scalars_.push_back(std::move(s));
      totals_[a.name] = 0;
    }
    has_correct_ |= a.kind == ArgKind::kCorrectCount;
  }
  if (resident_ && store_.device() != nullptr) {
    for (Scalar& s : scalars_) store_.device()->Add(s.value.ref());
  }
}

EpochMeter::~EpochMeter() {
  if (!resident_ || store_.device() == nullptr) return;
  for (Scalar& s : scalars_) store_.device()->Remove(s.value.raw());
}

absl::StatusOr<TensorRef> EpochMeter::Feed(const ArgSpec& a) {
  for (Scalar& s : scalars_) {
    if (s.spec == &a) return s.value.ref();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("the step's output '", a.name, "' is not a loss or metric"));
}

void EpochMeter::StartEpoch() {
  loss_sum_ = 0;
  correct_ = 0;
  if (!resident_) return;
  for (Scalar& s : scalars_) {
    if (s.sum == nullptr) continue;
    for (Tensor& t : s.sum->buf) {
      std::memset(t.raw(), 0, static_cast<size_t>(t.bytes()));
      if (store_.device() != nullptr) store_.device()->HostWrote(t.ref());
    }
  }
}

void EpochMeter::Add(const ArgSpec& spec, double v) {
  if (spec.role == ArgRole::kLoss) loss_sum_ += v;
  if (spec.kind == ArgKind::kCorrectCount) correct_ += v;
  if (spec.role == ArgRole::kMetric) totals_[spec.name] += v;
}

absl::StatusOr<std::optional<double>> EpochMeter::AfterStep(bool want_loss) {
  if (resident_) {
    if (!want_loss) return std::optional<double>();
    if (store_.device() != nullptr) {
      KILN_RETURN_IF_ERROR(store_.device()->ToHost(scalars_[0].value.ref()));
    }
    return std::optional<double>(scalars_[0].value.At(0));
  }
  for (const Scalar& s : scalars_) Add(*s.spec, s.value.At(0));
  return std::optional<double>(scalars_[0].value.At(0));
}

absl::Status EpochMeter::ReduceStep(Communicator& comm, double& flag, bool want_loss) {
  comm_ = &comm;
  // A resident step's values stay on the device: only the flag, and the loss when it is logged.
  const size_t n = !resident_ ? scalars_.size() : want_loss ? 1 : 0;
  if (resident_ && want_loss && store_.device() != nullptr) {
    KILN_RETURN_IF_ERROR(store_.device()->ToHost(scalars_[0].value.ref()));
  }
  std::vector<double>& v = reduced_;  // reused: no allocation per step
  v.resize(n + 1);
  v[0] = flag;
  for (size_t i = 0; i < n; ++i) v[i + 1] = scalars_[i].value.At(0);
  KILN_RETURN_IF_ERROR(
      comm.AllReduceSum(v.data(), static_cast<int64_t>(v.size()), ScalarType::kF64));
  flag = v[0];
  for (size_t i = 0; i < n; ++i) {
    const bool mean = scalars_[i].spec->role == ArgRole::kLoss;
    scalars_[i].value.Set(0, mean ? v[i + 1] / comm.size() : v[i + 1]);
  }
  return absl::OkStatus();
}

absl::Status EpochMeter::EndEpoch() {
  if (!resident_) return absl::OkStatus();
  std::vector<double> sums;
  for (const Scalar& s : scalars_) {
    if (s.sum == nullptr) continue;
    KILN_RETURN_IF_ERROR(store_.ToHost(*s.sum));
    sums.push_back(store_.Current(*s.sum).At(0));
  }
  if (comm_ != nullptr && !sums.empty()) {  // data-parallel: the loss averaged, metrics summed
    KILN_RETURN_IF_ERROR(
        comm_->AllReduceSum(sums.data(), static_cast<int64_t>(sums.size()), ScalarType::kF64));
  }
  size_t k = 0;
  for (const Scalar& s : scalars_) {
    if (s.sum == nullptr) continue;
    const double v = sums[k++];
    Add(*s.spec, comm_ != nullptr && s.spec->role == ArgRole::kLoss ? v / comm_->size() : v);
  }
  return absl::OkStatus();
}

}  // namespace kiln
