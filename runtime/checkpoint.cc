#include "runtime/checkpoint.h"

#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace kiln {

absl::Status SaveCheckpoint(const std::string& path, const ParameterStore& store,
                            const TrainingCounters& counters,
                            const std::map<std::string, std::string>& metadata) {
  KILN_RETURN_IF_ERROR(store.ToHost());
  std::vector<std::pair<std::string, const Tensor*>> tensors;
  for (const ParameterStore::Slot& s : store.slots()) {
    if (s.spec.kind == ArgKind::kRunningSum) continue;
    tensors.push_back({s.spec.name, &store.Current(s)});
  }
  std::map<std::string, std::string> meta = metadata;
  meta["format"] = "kiln-checkpoint-1";
  meta["step"] = absl::StrCat(counters.step);
  meta["epoch"] = absl::StrCat(counters.epoch);
  meta["batch"] = absl::StrCat(counters.batch_in_epoch);
  meta["seed"] = absl::StrCat(counters.seed);
  if (counters.global_batch > 0) meta["global_batch"] = absl::StrCat(counters.global_batch);
  meta["ranks"] = absl::StrCat(counters.ranks);
  return SaveSafetensors(path, tensors, meta);
}

namespace {

// A counter from the metadata; absent: left as it is.
template <typename T>
absl::Status Counter(const SafetensorsFile& f, const std::string& path, const char* key, T* out) {
  auto it = f.metadata.find(key);
  if (it == f.metadata.end()) return absl::OkStatus();
  if (!absl::SimpleAtoi(it->second, out)) {
    return absl::DataLossError(
        absl::StrCat(path, ": metadata \"", key, "\" is not a number: \"", it->second, "\""));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TrainingCounters> RestoreCheckpoint(const SafetensorsFile& f,
                                                   const std::string& path, ParameterStore& store,
                                                   const TrainingCounters& current) {
  // State the file lacks keeps its current value: bring the host copies up to date first.
  KILN_RETURN_IF_ERROR(store.ToHost());
  for (ParameterStore::Slot& s : store.slots()) {
    const Tensor* t = f.Find(s.spec.name);
    const Tensor& dst = store.Current(s);
    if (t == nullptr && s.spec.role == ArgRole::kParam) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": parameter '", s.spec.name, "' is missing from the checkpoint"));
    }
    if (t != nullptr && (t->shape() != dst.shape() || t->type() != dst.type())) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": ", s.spec.role == ArgRole::kParam ? "parameter '" : "state '", s.spec.name,
          "' expected ", ScalarTypeName(dst.type()), ShapeString(dst.shape()), ", got ",
          ScalarTypeName(t->type()), ShapeString(t->shape())));
    }
  }
  TrainingCounters c = current;
  c.batch_in_epoch = 0;  // absent in files written before interrupted epochs existed
  c.global_batch = 0;    // absent in files written before data-parallel training
  c.ranks = 1;
  KILN_RETURN_IF_ERROR(Counter(f, path, "step", &c.step));
  KILN_RETURN_IF_ERROR(Counter(f, path, "epoch", &c.epoch));
  KILN_RETURN_IF_ERROR(Counter(f, path, "batch", &c.batch_in_epoch));
  KILN_RETURN_IF_ERROR(Counter(f, path, "seed", &c.seed));
  KILN_RETURN_IF_ERROR(Counter(f, path, "global_batch", &c.global_batch));
  KILN_RETURN_IF_ERROR(Counter(f, path, "ranks", &c.ranks));
  if (c.step < 0 || c.epoch < 0 || c.batch_in_epoch < 0 || c.global_batch < 0 || c.ranks < 1) {
    return absl::DataLossError(
        absl::StrCat(path, ": negative step, epoch, batch or global-batch counter, or ranks < 1"));
  }
  for (ParameterStore::Slot& s : store.slots()) {
    const Tensor* t = f.Find(s.spec.name);
    if (t == nullptr) continue;
    std::memcpy(store.Current(s).raw(), t->raw(), static_cast<size_t>(t->bytes()));
  }
  store.HostWrote();
  return c;
}

}  // namespace kiln
