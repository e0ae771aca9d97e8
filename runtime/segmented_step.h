// A step compiled as several Halide pipelines run in sequence, for graphs too large for one:
// Halide 14's lowering grows faster than linearly with a pipeline's stages (a 4-block vision
// transformer's 620 stages took over 10 minutes to lower as one pipeline). Each segment reads the
// step's inputs and the intermediates earlier segments wrote, and writes some of the step's outputs
// and intermediates for later ones; the intermediates are buffers this step owns.
//
//   std::vector<kiln::SegmentedStep::Segment> parts = ...;  // from the compiler
//   auto step = kiln::SegmentedStep::Make(signature, std::move(parts), intermediates);
#pragma once

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/executable.h"

namespace kiln {

class SegmentedStep : public Executable {
 public:
  struct Segment {
    std::unique_ptr<Executable> step;
    // The segment's inputs: the whole step's inputs in order, then these intermediates.
    std::vector<int> intermediate_inputs;
    // Each of the segment's outputs: a step output (>= 0) or an intermediate (-1 - index).
    std::vector<int> outputs;
  };
  // InvalidArgument when the pieces do not fit: a segment whose signature does not begin with the
  // step's inputs, an intermediate read before a segment writes it, a step output written by no
  // segment or by two, a type or shape that differs.
  static absl::StatusOr<std::unique_ptr<SegmentedStep>> Make(
      Signature sig, std::vector<Segment> segments, const std::vector<ArgSpec>& intermediates);

  const Signature& signature() const override { return sig_; }
  absl::Status Run(const std::vector<TensorRef>& inputs,
                   const std::vector<TensorRef>& outputs) override;
  double compile_seconds() const override;
  size_t segments() const { return segments_.size(); }

 private:
  SegmentedStep() = default;
  Signature sig_;
  std::vector<Segment> segments_;
  std::vector<Tensor> intermediates_;
};

}  // namespace kiln
