// Lowering of a step program (graph nodes -> arguments and outputs) to ONE Halide Pipeline with
// multiple outputs, scheduled for the target. Layout conversion lives in LowerCtx (dsl/op_def.h).
//
//   absl::StatusOr<kiln::LoweredStep> l = kiln::LowerStep(g, program, ctx);
//   l->pipeline.compile_jit(target);
#pragma once

#include <vector>

#include "Halide.h"
#include "absl/status/statusor.h"
#include "compiler/model.h"
#include "dsl/op_def.h"

namespace kiln {

struct LoweredStep {
  Halide::Pipeline pipeline;
  std::vector<Halide::ImageParam> inputs;  // signature order
  std::vector<Halide::Func> outputs;       // signature order
};

// Throws nothing: Halide errors come back as Internal.
// With `plain`, every Func is compute_root with no further schedule (the reference the hand
// schedules are tested against).
absl::StatusOr<LoweredStep> LowerStep(const Graph& g, const StepProgram& program, LowerCtx& ctx,
                                      bool plain = false);

}  // namespace kiln
