// Lowering of a step program (graph nodes -> arguments and outputs) to ONE Halide Pipeline with
// multiple outputs, scheduled for the target. Layout conversion lives in LowerCtx (dsl/op_def.h).
//
//   absl::StatusOr<kiln::LoweredStep> l = kiln::LowerStep(g, program, ctx);
//   l->pipeline.compile_jit(target);
#pragma once

#include <optional>
#include <vector>

#include "Halide.h"
#include "absl/status/statusor.h"
#include "compiler/model.h"
#include "dsl/op_def.h"

namespace kiln {

// One input argument: a buffer, or a scalar passed by value (PassedByValue).
struct LoweredInput {
  std::optional<Halide::ImageParam> buffer;
  std::optional<Halide::Param<>> scalar;
  Halide::Argument argument() const {
    return buffer ? Halide::Argument(*buffer) : Halide::Argument(*scalar);
  }
};

struct LoweredStep {
  Halide::Pipeline pipeline;
  std::vector<LoweredInput> inputs;   // signature order
  std::vector<Halide::Func> outputs;  // signature order
  std::vector<Halide::Argument> arguments() const {
    std::vector<Halide::Argument> a;
    for (const LoweredInput& in : inputs) a.push_back(in.argument());
    return a;
  }
};

// The nodes a program computes or reads, in topological order: everything its outputs depend on,
// up to and including its inputs (whose own producers it does not see).
std::vector<int> ProgramNodes(const Graph& g, const StepProgram& program);

// Throws nothing: Halide errors come back as Internal.
// With `plain`, every Func is compute_root with no further schedule (the reference the hand
// schedules are tested against).
absl::StatusOr<LoweredStep> LowerStep(const Graph& g, const StepProgram& program, LowerCtx& ctx,
                                      bool plain = false);

}  // namespace kiln
