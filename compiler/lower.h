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

// How many examples at a time a step computes its one output in (0: the whole batch at once).
// A step qualifies when it reads only examples, parameters and state, has one per-example output
// and computes row n of every value from example n alone (evaluation and inference, checked per
// op), on a CPU, when its largest intermediate fills at least 8 blocks. A block holds as many
// examples as keep its largest intermediate within 1 MB, in whole vectors of images. The blocks
// run in parallel, each computing every intermediate for its examples only, so that what one op
// writes is still in cache when the next reads it.
int64_t ExampleBlock(const Graph& g, const StepProgram& program, const LowerCtx& ctx);

// Throws nothing: Halide errors come back as Internal.
// With `plain`, every Func is compute_root with no further schedule (the reference the hand
// schedules are tested against). With `example_blocks`, a step that qualifies (ExampleBlock) is
// computed in blocks of examples.
absl::StatusOr<LoweredStep> LowerStep(const Graph& g, const StepProgram& program, LowerCtx& ctx,
                                      bool plain = false, bool example_blocks = false);

}  // namespace kiln
