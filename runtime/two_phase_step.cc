#include "runtime/two_phase_step.h"

#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace kiln {

absl::StatusOr<std::unique_ptr<TwoPhaseStep>> TwoPhaseStep::Make(
    std::unique_ptr<Executable> gradient, std::unique_ptr<Executable> update) {
  if (gradient == nullptr || update == nullptr) {
    return absl::InvalidArgumentError("a two-phase step needs both phases");
  }
  std::unique_ptr<TwoPhaseStep> s(new TwoPhaseStep(std::move(gradient), std::move(update)));
  KILN_RETURN_IF_ERROR(s->Build());
  return s;
}

absl::StatusOr<std::unique_ptr<Executable>> MakeTwoPhaseStep(std::unique_ptr<Executable> gradient,
                                                             std::unique_ptr<Executable> update) {
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<TwoPhaseStep> s,
                        TwoPhaseStep::Make(std::move(gradient), std::move(update)));
  return std::unique_ptr<Executable>(std::move(s));
}

absl::Status TwoPhaseStep::Build() {
  const Signature& gs = gradient_->signature();
  const Signature& us = update_->signature();
  auto bad = [](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("the two phases do not fit: ", why));
  };
  for (const Signature* s : {&gs, &us}) {
    if (absl::Status st = s->Validate(); !st.ok()) return bad(std::string(st.message()));
  }
  if (gs.gradient_elements <= 0 || gs.gradient_elements != us.gradient_elements) {
    return bad(absl::StrCat("gradient buffers of ", gs.gradient_elements, " and ",
                            us.gradient_elements, " elements"));
  }
  // The gradients, by the parameter each belongs to (its `param` link): what the gradient phase
  // writes, the update phase reads. A parameter is the same in both phases when its name is, as
  // in checkpoints.
  std::map<std::string, const ArgSpec*> written;
  for (const ArgSpec& a : gs.outputs) {
    if (a.role == ArgRole::kGradient) written[gs.inputs[a.param].name] = &a;
  }
  for (const ArgSpec& a : us.inputs) {
    if (a.role != ArgRole::kGradient) continue;
    const std::string& param = us.inputs[a.param].name;
    auto it = written.find(param);
    if (it == written.end()) {
      return bad(absl::StrCat("no gradient phase output for parameter '", param, "'"));
    }
    const ArgSpec& w = *it->second;
    if (w.type != a.type || w.shape != a.shape || w.offset != a.offset) {
      return bad(absl::StrCat("the gradient of '", param, "' is written as ",
                              ScalarTypeName(w.type), ShapeString(w.shape), " at ", w.offset,
                              " and read as ", ScalarTypeName(a.type), ShapeString(a.shape), " at ",
                              a.offset));
    }
    written.erase(it);
  }
  if (!written.empty()) {
    return bad(absl::StrCat("the update phase reads no gradient of parameter '",
                            written.begin()->first, "'"));
  }
  for (const ArgSpec& a : gs.outputs) {
    if (a.role == ArgRole::kGradient) {
      grads_ = Tensor(a.type, {gs.gradient_elements});
      break;
    }
  }

  // The combined signature: inputs of both phases, one per role and name; outputs of both but the
  // gradients. Links are re-indexed into the combined lists.
  std::map<std::string, int> input_of;
  Executable* exes[2] = {gradient_.get(), update_.get()};
  for (int p = 0; p < 2; ++p) {
    Phase& ph = phases_[p];
    ph.exe = exes[p];
    const Signature& s = ph.exe->signature();
    for (const ArgSpec& a : s.inputs) {
      if (a.role == ArgRole::kGradient) {
        ph.in_from.push_back(kFromGradients);
        continue;
      }
      const std::string key = absl::StrCat(ArgRoleName(a.role), "/", a.name);
      auto [it, fresh] = input_of.emplace(key, static_cast<int>(sig_.inputs.size()));
      if (fresh) {
        sig_.inputs.push_back(a);
      } else if (sig_.inputs[it->second].type != a.type ||
                 sig_.inputs[it->second].shape != a.shape) {
        return bad(absl::StrCat("both read ", key, " with different types or shapes"));
      }
      ph.in_from.push_back(it->second);
    }
    for (const ArgSpec& a : s.outputs) {
      if (a.role == ArgRole::kGradient) {
        ph.out_from.push_back(kFromGradients);
        views_.push_back(GradientView(a));
        continue;
      }
      ph.out_from.push_back(static_cast<int>(sig_.outputs.size()));
      sig_.outputs.push_back(a);
    }
  }
  // Links: a phase's indices into its own lists become indices into the combined ones.
  for (int p = 0; p < 2; ++p) {
    const Phase& ph = phases_[p];
    const Signature& s = ph.exe->signature();
    for (size_t i = 0; i < s.inputs.size(); ++i) {
      if (ph.in_from[i] == kFromGradients) continue;
      ArgSpec& a = sig_.inputs[ph.in_from[i]];
      if (s.inputs[i].param >= 0) a.param = ph.in_from[s.inputs[i].param];
      if (s.inputs[i].sums >= 0) a.sums = ph.out_from[s.inputs[i].sums];
    }
    for (size_t i = 0; i < s.outputs.size(); ++i) {
      if (ph.out_from[i] == kFromGradients) continue;
      ArgSpec& a = sig_.outputs[ph.out_from[i]];
      if (s.outputs[i].updates >= 0) a.updates = ph.in_from[s.outputs[i].updates];
      if (s.outputs[i].sums >= 0) a.sums = ph.out_from[s.outputs[i].sums];
    }
  }
  sig_.resident_batch = gs.resident_batch;
  if (absl::Status st = sig_.Validate(); !st.ok()) return bad(std::string(st.message()));
  set_on_device(gradient_->on_device());
  return absl::OkStatus();
}

void TwoPhaseStep::set_device_tensors(DeviceTensors* d) {
  // The gradient views stay registered in a previous store: it may already be gone (a store's
  // entries go with it; a Trainer's store goes before the steps it was given).
  device_tensors_ = d;
  for (Phase& p : phases_) {
    if (p.exe != nullptr) p.exe->set_device_tensors(d);
  }
}

absl::Status TwoPhaseStep::GradientsToHost() {
  if (device_tensors_ == nullptr) return absl::OkStatus();
  for (const TensorRef& v : views_) KILN_RETURN_IF_ERROR(device_tensors_->ToHost(v));
  return absl::OkStatus();
}

TensorRef TwoPhaseStep::GradientView(const ArgSpec& spec) {
  return {static_cast<char*>(grads_.raw()) + spec.offset * ScalarSize(spec.type), spec.type,
          spec.shape};
}

absl::Status TwoPhaseStep::RunPhase(Phase& p, const std::vector<TensorRef>& inputs,
                                    const std::vector<TensorRef>& outputs) {
  const Signature& s = p.exe->signature();
  p.in.resize(s.inputs.size());
  p.out.resize(s.outputs.size());
  for (size_t i = 0; i < s.inputs.size(); ++i) {
    p.in[i] = p.in_from[i] == kFromGradients ? GradientView(s.inputs[i]) : inputs[p.in_from[i]];
  }
  for (size_t i = 0; i < s.outputs.size(); ++i) {
    p.out[i] =
        p.out_from[i] == kFromGradients ? GradientView(s.outputs[i]) : outputs[p.out_from[i]];
  }
  p.exe->set_on_device(on_device_);
  return p.exe->Run(p.in, p.out);
}

absl::Status TwoPhaseStep::Run(const std::vector<TensorRef>& inputs,
                               const std::vector<TensorRef>& outputs) {
  KILN_RETURN_IF_ERROR(CheckArguments(sig_, inputs, outputs));
  // On a device the gradients stay there between the phases (no copy unless the hook reads them).
  if (device_tensors_ != nullptr) {
    for (const TensorRef& v : views_) device_tensors_->Add(v);
  }
  KILN_RETURN_IF_ERROR(RunPhase(phases_[0], inputs, outputs));
  if (between_device_ && device_tensors_ != nullptr) {
    std::vector<DeviceSpan> spans;
    for (const TensorRef& v : views_) {
      KILN_ASSIGN_OR_RETURN(void* address, device_tensors_->DeviceAddress(v));
      spans.push_back({address, NumElements(v.shape), v.type});
    }
    KILN_RETURN_IF_ERROR(between_device_(spans));
  } else if (between_) {
    if (device_tensors_ != nullptr) {
      for (const TensorRef& v : views_) KILN_RETURN_IF_ERROR(device_tensors_->ToHost(v));
    }
    KILN_RETURN_IF_ERROR(between_(grads_));
    if (device_tensors_ != nullptr) {
      for (const TensorRef& v : views_) device_tensors_->HostWrote(v);
    }
  }
  return RunPhase(phases_[1], inputs, outputs);
}

}  // namespace kiln
