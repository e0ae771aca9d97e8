#include "runtime/segmented_step.h"

#include "absl/strings/str_cat.h"

namespace kiln {

namespace {

bool SameKind(const ArgSpec& a, const ArgSpec& b) { return a.type == b.type && a.shape == b.shape; }

}  // namespace

absl::StatusOr<std::unique_ptr<SegmentedStep>> SegmentedStep::Make(
    Signature sig, std::vector<Segment> segments, const std::vector<ArgSpec>& intermediates) {
  std::unique_ptr<SegmentedStep> s(new SegmentedStep());
  const size_t n_in = sig.inputs.size();
  std::vector<bool> written(intermediates.size(), false), output_written(sig.outputs.size(), false);
  for (size_t k = 0; k < segments.size(); ++k) {
    const Segment& seg = segments[k];
    const Signature& ss = seg.step->signature();
    auto bad = [&](const std::string& why) {
      return absl::InvalidArgumentError(
          absl::StrCat("segment ", k, " of ", segments.size(), ": ", why));
    };
    if (ss.inputs.size() != n_in + seg.intermediate_inputs.size() ||
        ss.outputs.size() != seg.outputs.size()) {
      return bad("its argument counts do not match its routes");
    }
    for (size_t i = 0; i < n_in; ++i) {
      if (!SameKind(ss.inputs[i], sig.inputs[i])) return bad("an input differs from the step's");
    }
    for (size_t j = 0; j < seg.intermediate_inputs.size(); ++j) {
      const int m = seg.intermediate_inputs[j];
      if (m < 0 || static_cast<size_t>(m) >= intermediates.size() || !written[m]) {
        return bad(absl::StrCat("intermediate ", m, " is read before any segment writes it"));
      }
      if (!SameKind(ss.inputs[n_in + j], intermediates[m])) return bad("an intermediate differs");
    }
    for (size_t o = 0; o < seg.outputs.size(); ++o) {
      const int r = seg.outputs[o];
      if (r >= 0) {
        if (static_cast<size_t>(r) >= sig.outputs.size() || output_written[r] ||
            !SameKind(ss.outputs[o], sig.outputs[r])) {
          return bad(absl::StrCat("output ", r, " is out of range, written twice or differs"));
        }
        output_written[r] = true;
      } else {
        const size_t m = static_cast<size_t>(-1 - r);
        if (m >= intermediates.size() || !SameKind(ss.outputs[o], intermediates[m])) {
          return bad(absl::StrCat("intermediate ", m, " is out of range or differs"));
        }
        written[m] = true;
      }
    }
  }
  for (size_t r = 0; r < output_written.size(); ++r) {
    if (!output_written[r]) {
      return absl::InvalidArgumentError(
          absl::StrCat("no segment writes the step's output '", sig.outputs[r].name, "'"));
    }
  }
  for (const ArgSpec& a : intermediates) s->intermediates_.emplace_back(a.type, a.shape);
  s->sig_ = std::move(sig);
  s->segments_ = std::move(segments);
  return s;
}

absl::Status SegmentedStep::Run(const std::vector<TensorRef>& inputs,
                                const std::vector<TensorRef>& outputs) {
  if (inputs.size() != sig_.inputs.size() || outputs.size() != sig_.outputs.size()) {
    return absl::InvalidArgumentError(absl::StrCat("expected ", sig_.inputs.size(), " inputs and ",
                                                   sig_.outputs.size(), " outputs, got ",
                                                   inputs.size(), " and ", outputs.size()));
  }
  std::vector<TensorRef> in, out;
  for (size_t k = 0; k < segments_.size(); ++k) {
    const Segment& seg = segments_[k];
    in.assign(inputs.begin(), inputs.end());
    for (int m : seg.intermediate_inputs) in.push_back(intermediates_[m].ref());
    out.clear();
    for (int r : seg.outputs) {
      out.push_back(r >= 0 ? outputs[r] : intermediates_[static_cast<size_t>(-1 - r)].ref());
    }
    if (absl::Status st = seg.step->Run(in, out); !st.ok()) {
      return absl::Status(st.code(), absl::StrCat("segment ", k + 1, " of ", segments_.size(),
                                                  " of the step: ", st.message()));
    }
  }
  return absl::OkStatus();
}

double SegmentedStep::compile_seconds() const {
  double s = 0;
  for (const Segment& seg : segments_) s += seg.step->compile_seconds();
  return s;
}

}  // namespace kiln
