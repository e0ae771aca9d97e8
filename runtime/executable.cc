#include "runtime/executable.h"

#include <cstdint>

#include "absl/strings/str_cat.h"

namespace kiln {

const char* ArgRoleName(ArgRole r) {
  switch (r) {
    case ArgRole::kData:
      return "data";
    case ArgRole::kHyper:
      return "hyper";
    case ArgRole::kParam:
      return "param";
    case ArgRole::kState:
      return "state";
    case ArgRole::kLoss:
      return "loss";
    case ArgRole::kMetric:
      return "metric";
    case ArgRole::kNewParam:
      return "new_param";
    case ArgRole::kNewState:
      return "new_state";
    case ArgRole::kOutput:
      return "output";
    case ArgRole::kDataset:
      return "dataset";
  }
  return "?";
}

namespace {
int Find(const std::vector<ArgSpec>& v, ArgRole role, const std::string& name) {
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i].role == role && v[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

absl::Status CheckList(const std::vector<ArgSpec>& specs, const std::vector<TensorRef>& refs,
                       const char* what) {
  if (specs.size() != refs.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected ", specs.size(), " ", what, " buffers, got ", refs.size()));
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    const ArgSpec& s = specs[i];
    const TensorRef& r = refs[i];
    if (r.data == nullptr || r.type != s.type || r.shape != s.shape) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " '", s.name, "' (", ArgRoleName(s.role), "): expected ",
                       ScalarTypeName(s.type), ShapeString(s.shape), ", got ",
                       r.data ? "" : "null ", ScalarTypeName(r.type), ShapeString(r.shape)));
    }
  }
  return absl::OkStatus();
}
}  // namespace

int Signature::FindInput(ArgRole role, const std::string& name) const {
  return Find(inputs, role, name);
}
int Signature::FindOutput(ArgRole role, const std::string& name) const {
  return Find(outputs, role, name);
}

absl::Status CheckArguments(const Signature& sig, const std::vector<TensorRef>& inputs,
                            const std::vector<TensorRef>& outputs) {
  if (absl::Status s = CheckList(sig.inputs, inputs, "input"); !s.ok()) return s;
  if (absl::Status s = CheckList(sig.outputs, outputs, "output"); !s.ok()) return s;
  for (size_t o = 0; o < outputs.size(); ++o) {
    auto ob = reinterpret_cast<uintptr_t>(outputs[o].data);
    uintptr_t oe = ob + static_cast<uintptr_t>(outputs[o].bytes());
    for (size_t i = 0; i < inputs.size(); ++i) {
      auto ib = reinterpret_cast<uintptr_t>(inputs[i].data);
      uintptr_t ie = ib + static_cast<uintptr_t>(inputs[i].bytes());
      if (ib < oe && ob < ie) {
        return absl::FailedPreconditionError(absl::StrCat(
            "input '", sig.inputs[i].name, "' overlaps output '", sig.outputs[o].name,
            "': a step must never read a buffer it writes (swap parameter buffers instead)"));
      }
    }
  }
  for (size_t a = 0; a < outputs.size(); ++a) {
    for (size_t b = a + 1; b < outputs.size(); ++b) {
      auto ab = reinterpret_cast<uintptr_t>(outputs[a].data);
      auto bb = reinterpret_cast<uintptr_t>(outputs[b].data);
      if (ab < bb + static_cast<uintptr_t>(outputs[b].bytes()) &&
          bb < ab + static_cast<uintptr_t>(outputs[a].bytes())) {
        return absl::FailedPreconditionError(absl::StrCat(
            "outputs '", sig.outputs[a].name, "' and '", sig.outputs[b].name, "' overlap"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace kiln
