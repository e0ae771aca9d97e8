#include "runtime/batch_source.h"

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace kiln {
namespace {

absl::Status NotFed(const ArgSpec& a) {
  return absl::InvalidArgumentError(absl::StrCat("no batch source feeds the step's ",
                                                 ArgRoleName(a.role), " input '", a.name, "' (",
                                                 ArgKindName(a.kind), ")"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<HostBatches>> HostBatches::Make(const Signature& sig,
                                                               const Dataset& data, uint64_t seed,
                                                               bool shuffle, bool drop_last) {
  KILN_RETURN_IF_ERROR(data.Validate());
  const int e = sig.FindInput(ArgKind::kExample);
  if (e < 0 || sig.inputs[e].role != ArgRole::kData) {
    return absl::InvalidArgumentError("the step has no per-batch example input");
  }
  const ArgSpec& ex = sig.inputs[e];
  const Shape& s = ex.shape;
  const bool fits =
      (ex.type == ScalarType::kF32 || (ex.type == ScalarType::kU8 && !data.float_examples())) &&
      !s.empty() && NumElements(s) == s[0] * data.example_size();
  if (!fits) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the step's example input '", ex.name, "' is ", ScalarTypeName(ex.type), ShapeString(s),
        ", expected float32", data.float_examples() ? "" : " or uint8", " [batch, ...] with ",
        data.example_size(), " values per example (the data's examples are ",
        data.float_examples() ? "float" : "uint8", ShapeString(data.example_shape), ")"));
  }
  const int64_t batch = s[0];
  std::unique_ptr<HostBatches> b(new HostBatches(data, batch, seed, shuffle, drop_last));
  b->example_ = Tensor(ex.type, s);
  b->regression_ = data.regression();
  b->labels_ = Tensor(ScalarType::kI32, {batch});
  if (const int t = sig.FindInput(ArgKind::kTarget); t >= 0) {
    const ArgSpec& target = sig.inputs[t];
    Shape want = {batch};
    if (data.regression())
      want.insert(want.end(), data.target_shape.begin(), data.target_shape.end());
    const ScalarType type = data.regression() ? ScalarType::kF32 : ScalarType::kI32;
    if (target.type != type || NumElements(target.shape) != NumElements(want) ||
        target.shape.empty() || target.shape[0] != batch) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the step's target input '", target.name, "' is ", ScalarTypeName(target.type),
          ShapeString(target.shape), ", expected the data set's ",
          data.regression() ? "float32 regression targets " : "int32 class labels ",
          ShapeString(want)));
    }
    if (data.regression()) {
      b->targets_ = Tensor(ScalarType::kF32, target.shape);
      b->feeds_targets_ = true;
    }
  }
  return b;
}

absl::StatusOr<std::unique_ptr<HostBatches>> HostBatches::ForTraining(const Signature& sig,
                                                                      const Dataset& data,
                                                                      uint64_t seed, bool shuffle,
                                                                      int random_shift) {
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<HostBatches> b,
                        Make(sig, data, seed, shuffle, /*drop_last=*/true));
  b->feeder_.set_random_shift(random_shift);
  return b;
}

absl::StatusOr<std::unique_ptr<HostBatches>> HostBatches::ForEvaluation(const Signature& sig,
                                                                        const Dataset& data) {
  return Make(sig, data, /*seed=*/0, /*shuffle=*/false, /*drop_last=*/false);
}

absl::StatusOr<TensorRef> HostBatches::Feed(const ArgSpec& a) {
  if (a.role == ArgRole::kData && a.kind == ArgKind::kExample) return example_.ref();
  if (a.role == ArgRole::kData && a.kind == ArgKind::kTarget) {
    return regression_ ? targets_.ref() : labels_.ref();
  }
  return NotFed(a);
}

int64_t HostBatches::Prepare(int64_t b) {
  int32_t* labels = regression_ ? nullptr : labels_.data<int32_t>();
  if (feeds_targets_) feeder_.FillTargets(b, targets_.data<float>());
  return example_.type() == ScalarType::kU8 ? feeder_.Fill(b, example_.data<uint8_t>(), labels)
                                            : feeder_.Fill(b, example_.data<float>(), labels);
}

absl::StatusOr<std::unique_ptr<ResidentBatches>> ResidentBatches::Make(const Signature& sig,
                                                                       const Dataset& data,
                                                                       uint64_t seed, bool shuffle,
                                                                       DeviceTensors* device) {
  if (device == nullptr) {
    return absl::FailedPreconditionError(
        "a resident training step (the whole training set as an input) needs device residency: "
        "a GPU step, or set_device_emulation(true) before Initialize()");
  }
  KILN_RETURN_IF_ERROR(data.Validate());
  if (data.float_examples() || data.regression()) {
    return absl::InvalidArgumentError(
        "resident training takes uint8 examples and int32 labels; this data set has float "
        "examples or regression targets (train on the host-fed path)");
  }
  for (const ArgSpec& a : sig.inputs) {
    if (a.role != ArgRole::kDataset) continue;
    const bool pixels = a.kind == ArgKind::kExample;
    const bool fits = !a.shape.empty() && a.shape[0] == data.count &&
                      (pixels ? a.type == ScalarType::kU8 &&
                                    NumElements(a.shape) == data.count * data.example_size()
                              : a.type == ScalarType::kI32 && a.shape.size() == 1);
    if (!fits) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the resident training step was compiled for a data set input '", a.name, "' ",
          ScalarTypeName(a.type), ShapeString(a.shape), "; the training data has ", data.count,
          " examples of shape ", ShapeString(data.example_shape),
          " (resident steps take raw uint8 pixels and int32 labels of the whole set)"));
    }
  }
  std::unique_ptr<ResidentBatches> b(new ResidentBatches(data, sig.resident_batch, seed, shuffle));
  b->device_ = device;
  b->order_ = Tensor(ScalarType::kI32, {data.count});
  const int start = sig.FindInput(ArgKind::kBatchStart);
  if (start < 0) {
    return absl::InvalidArgumentError("a resident training step needs a batch-start input");
  }
  b->start_ = Tensor(sig.inputs[start].type, sig.inputs[start].shape);
  // The data set, its permutation: on the device while the source lives.
  for (const ArgSpec& a : sig.inputs) {
    if (a.role != ArgRole::kDataset) continue;
    KILN_ASSIGN_OR_RETURN(TensorRef r, b->Feed(a));
    device->Add(r);
    b->registered_.push_back(r.data);
  }
  return b;
}

ResidentBatches::~ResidentBatches() {
  for (const void* p : registered_) device_->Remove(p);
}

absl::StatusOr<TensorRef> ResidentBatches::Feed(const ArgSpec& a) {
  if (a.role == ArgRole::kHyper && a.kind == ArgKind::kBatchStart) return start_.ref();
  if (a.role != ArgRole::kDataset) return NotFed(a);
  switch (a.kind) {
    case ArgKind::kOrder:
      return order_.ref();
    case ArgKind::kExample:
      return TensorRef{const_cast<uint8_t*>(data_.pixels.data()), a.type, a.shape};
    case ArgKind::kTarget:
      return TensorRef{const_cast<int32_t*>(data_.labels.data()), a.type, a.shape};
    default:
      return NotFed(a);
  }
}

void ResidentBatches::StartEpoch(int epoch) {
  feeder_.StartEpoch(epoch);
  int32_t* o = order_.data<int32_t>();
  for (size_t i = 0; i < feeder_.order().size(); ++i)
    o[i] = static_cast<int32_t>(feeder_.order()[i]);
  device_->HostWrote(order_.ref());
}

int64_t ResidentBatches::Prepare(int64_t b) {
  start_.Set(0, static_cast<double>(feeder_.FirstPosition(b)));
  return batch_;
}

absl::StatusOr<std::unique_ptr<BatchSource>> MakeTrainingBatches(const Signature& sig,
                                                                 const Dataset& data, uint64_t seed,
                                                                 bool shuffle, int random_shift,
                                                                 DeviceTensors* device) {
  if (sig.resident_batch > 0) {
    if (random_shift > 0) {
      return absl::InvalidArgumentError(
          "random_shift is not available with resident training: the training set stays on "
          "the device as loaded (train on the CPU path to augment)");
    }
    KILN_ASSIGN_OR_RETURN(std::unique_ptr<ResidentBatches> b,
                          ResidentBatches::Make(sig, data, seed, shuffle, device));
    return std::unique_ptr<BatchSource>(std::move(b));
  }
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<HostBatches> b,
                        HostBatches::ForTraining(sig, data, seed, shuffle, random_shift));
  return std::unique_ptr<BatchSource>(std::move(b));
}

}  // namespace kiln
