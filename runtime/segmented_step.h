// A step compiled as several Halide pipelines run in sequence, for graphs too large for one:
// Halide 14's lowering grows faster than linearly with a pipeline's stages (a 4-block vision
// transformer's 620 stages took over 10 minutes to lower as one pipeline). Each segment reads the
// step's inputs and the intermediates earlier segments wrote, and writes some of the step's outputs
// and intermediates for later ones; the intermediates are buffers this step owns.
//
//   kiln::SegmentPlan plan = ...;  // from the compiler, or an AOT manifest
//   std::vector<std::unique_ptr<kiln::Executable>> parts = ...;  // one per plan.parts, compiled
//   // with the signatures SegmentSignature(sig, plan, k)
//   auto step = kiln::SegmentedStep::Make(sig, plan, std::move(parts));
#pragma once

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/executable.h"

namespace kiln {

// How a step is cut into pipelines.
struct SegmentPlan {
  struct Part {
    std::vector<int> reads;   // the intermediates it reads, after the step's inputs
    std::vector<int> writes;  // each of its outputs: step output r (>= 0) or intermediate -1 - m
  };
  std::vector<ArgSpec> intermediates;  // role kData
  std::vector<Part> parts;             // in run order; empty: the step is one pipeline
};

// The signature segment k of `plan` is compiled with: the step's inputs, then the intermediates it
// reads; its writes (step outputs as the step declares them, intermediates with role kOutput).
Signature SegmentSignature(const Signature& step, const SegmentPlan& plan, size_t k);

// InvalidArgument naming the segment when the plan does not fit the step: an intermediate read
// before a segment writes it or written twice, an index out of range, a step output written by no
// segment or by two.
absl::Status ValidateSegmentPlan(const Signature& step, const SegmentPlan& plan);

class SegmentedStep : public Executable {
 public:
  // `steps[k]` runs plan.parts[k]; its signature must have the types and shapes of
  // SegmentSignature(sig, plan, k). InvalidArgument otherwise or when the plan does not fit.
  static absl::StatusOr<std::unique_ptr<SegmentedStep>> Make(
      Signature sig, SegmentPlan plan, std::vector<std::unique_ptr<Executable>> steps);

  const Signature& signature() const override { return sig_; }
  absl::Status Run(const std::vector<TensorRef>& inputs,
                   const std::vector<TensorRef>& outputs) override;
  double compile_seconds() const override;
  // The wall time the segments took to compile together (they may compile concurrently); unset,
  // compile_seconds() is the sum of theirs.
  void set_compile_seconds(double s) { compile_s_ = s; }
  size_t segments() const { return steps_.size(); }
  const SegmentPlan& plan() const { return plan_; }

 private:
  SegmentedStep() = default;
  Signature sig_;
  SegmentPlan plan_;
  std::vector<std::unique_ptr<Executable>> steps_;
  std::vector<Tensor> intermediates_;  // allocated by the first Run
  double compile_s_ = -1;              // set_compile_seconds; negative: unset
};

}  // namespace kiln
