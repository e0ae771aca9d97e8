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
    case ArgRole::kGradient:
      return "gradient";
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

const char* ArgKindName(ArgKind k) {
  switch (k) {
    case ArgKind::kNone:
      return "none";
    case ArgKind::kLearningRate:
      return "learning_rate";
    case ArgKind::kStep:
      return "step";
    case ArgKind::kBatchStart:
      return "batch_start";
    case ArgKind::kExample:
      return "example";
    case ArgKind::kTarget:
      return "target";
    case ArgKind::kOrder:
      return "order";
    case ArgKind::kCorrectCount:
      return "correct_count";
    case ArgKind::kPrediction:
      return "prediction";
    case ArgKind::kExampleLoss:
      return "example_loss";
    case ArgKind::kRunningSum:
      return "running_sum";
    case ArgKind::kGradScale:
      return "grad_scale";
    case ArgKind::kExampleOffset:
      return "example_offset";
  }
  return "?";
}

namespace {
int FindKind(const std::vector<ArgSpec>& args, ArgKind kind) {
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i].kind == kind) return static_cast<int>(i);
  }
  return -1;
}

// Which roles each kind may have.
bool KindFitsRole(ArgKind k, ArgRole r) {
  switch (k) {
    case ArgKind::kNone:
      return true;
    case ArgKind::kLearningRate:
    case ArgKind::kStep:
    case ArgKind::kBatchStart:
    case ArgKind::kGradScale:
    case ArgKind::kExampleOffset:
      return r == ArgRole::kHyper;
    case ArgKind::kExample:
    case ArgKind::kTarget:
      return r == ArgRole::kData || r == ArgRole::kDataset;
    case ArgKind::kOrder:
      return r == ArgRole::kDataset;
    case ArgKind::kCorrectCount:
      return r == ArgRole::kMetric;
    case ArgKind::kPrediction:
    case ArgKind::kExampleLoss:
      return r == ArgRole::kOutput;
    case ArgKind::kRunningSum:
      return r == ArgRole::kState || r == ArgRole::kNewState;
  }
  return false;
}
}  // namespace

int Signature::FindInput(ArgKind kind) const { return FindKind(inputs, kind); }
int Signature::FindOutput(ArgKind kind) const { return FindKind(outputs, kind); }

absl::Status Signature::Validate() const {
  auto bad = [](const ArgSpec& a, const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("argument '", a.name, "' (", ArgRoleName(a.role),
                                                   ", ", ArgKindName(a.kind), "): ", why));
  };
  auto in_range = [](int i, size_t n) { return i >= 0 && static_cast<size_t>(i) < n; };
  for (const std::vector<ArgSpec>* list : {&inputs, &outputs}) {
    for (const ArgSpec& a : *list) {
      if (!KindFitsRole(a.kind, a.role)) return bad(a, "this kind does not fit this role");
      const bool linked = a.role == ArgRole::kState || a.role == ArgRole::kGradient;
      if (a.param >= 0 && (!linked || !in_range(a.param, inputs.size()) ||
                           inputs[a.param].role != ArgRole::kParam)) {
        return bad(a, absl::StrCat("param ", a.param, " is not a parameter input"));
      }
      if (a.role == ArgRole::kGradient) {
        if (a.param < 0) return bad(a, "a gradient names no parameter");
        const ArgSpec& p = inputs[a.param];
        if (p.type != a.type || p.shape != a.shape) {
          return bad(a, absl::StrCat("the gradient of '", p.name, "' has another type or shape"));
        }
        const int64_t align = kGradientAlignBytes / ScalarSize(a.type);
        if (a.offset < 0 || a.offset % align != 0 ||
            a.offset > gradient_elements - NumElements(a.shape)) {
          return bad(a, absl::StrCat("offset ", a.offset, " is not a ", kGradientAlignBytes,
                                     "-byte boundary inside the ", gradient_elements,
                                     "-element gradient buffer"));
        }
      } else if (a.offset != -1) {
        return bad(a, "only gradients have an offset");
      }
      if (a.sums >= 0 && (a.kind != ArgKind::kRunningSum || !in_range(a.sums, outputs.size()))) {
        return bad(a, absl::StrCat("sums ", a.sums, " is not an output"));
      }
    }
  }
  // One gradient buffer holds one element type.
  const ArgSpec* first_gradient = nullptr;
  for (const std::vector<ArgSpec>* list : {&inputs, &outputs}) {
    for (const ArgSpec& a : *list) {
      if (a.role != ArgRole::kGradient) continue;
      if (first_gradient == nullptr) first_gradient = &a;
      if (a.type != first_gradient->type) {
        return bad(a, absl::StrCat("a gradient of another type than '", first_gradient->name,
                                   "' in one gradient buffer"));
      }
    }
  }
  for (const ArgSpec& a : outputs) {
    const bool replaces = a.role == ArgRole::kNewParam || a.role == ArgRole::kNewState;
    if (replaces != (a.updates >= 0)) return bad(a, "only new parameters and states update inputs");
    if (!replaces) continue;
    if (!in_range(a.updates, inputs.size())) return bad(a, "updates no input");
    const ArgSpec& old = inputs[a.updates];
    const ArgRole want = a.role == ArgRole::kNewParam ? ArgRole::kParam : ArgRole::kState;
    if (old.role != want || old.type != a.type || old.shape != a.shape) {
      return bad(a, absl::StrCat("updates input '", old.name, "' of another role, type or shape"));
    }
  }
  return absl::OkStatus();
}

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
