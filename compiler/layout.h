// The layout planner: the physical layout of each intermediate of a step.
//
// Every step argument (inputs, parameters, optimizer state, outputs) stays row-major: Halide's
// storage directives do not reach a pipeline's inputs and outputs, and checkpoints, weight import,
// the inference library and AOT metadata read them as they are. A split step's intermediates are
// the exception: planned with the whole program, a batch-inner one crosses between segments as a
// row-major [C, H, W, N] buffer (BatchLastShape), as it is stored inside them. Inside
// the step, [N, C, H, W] activations (the outputs of ops whose OpDef says batch_activation:
// convolutions, pooling and their backward ops) and the elementwise nodes computed from them are
// stored with the batch innermost when the batch fills vectors: one vector is `lanes` images at
// the same (channel, y, x), so a convolution's inner loop loads whole vectors whatever the image
// width or the channel count (the tutorial CNN's first convolution has one input channel and
// 28-wide rows). The ops that read the layout (dsl/ops/conv.cc, dsl/ops/pool.cc, LowerCtx's
// default schedule) ask LowerCtx::layout(); results do not depend on it.
//
//   LayoutPlan plan = PlanLayouts(g, nodes, arguments, LayoutChoice::kAuto, ctx);
//   ctx.set_layouts(plan);
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dsl/op_def.h"

namespace kiln {

enum class LayoutChoice {
  kAuto,        // batch-inner where the batch fills at least half a vector (CPU targets)
  kRowMajor,    // every intermediate row-major (GPU targets always; a user's escape hatch)
  kBatchInner,  // batch-inner wherever the op allows, whatever the batch (tests)
};

// "auto", "row_major", "batch_inner"; InvalidArgument naming the choices otherwise.
absl::StatusOr<LayoutChoice> ParseLayoutChoice(const std::string& name);
std::string LayoutChoiceName(LayoutChoice c);

// node id -> layout; a node not listed is row-major.
using LayoutPlan = std::map<int, Layout>;

// Plans the layouts of `nodes` (a step's nodes in topological order); `arguments` are the nodes
// the step reads from its arguments (row-major, never planned).
LayoutPlan PlanLayouts(const Graph& g, const std::vector<int>& nodes,
                       const std::set<int>& arguments, LayoutChoice choice, const LowerCtx& ctx);

// The shape of a batch-inner [N, C, H, W] value passed between pipelines (a segment's
// intermediate) as a row-major buffer: the batch moved last, [C, H, W, N]. Its element
// (n, c, y, x) sits where the batch-inner layout stores it inside a pipeline.
Shape BatchLastShape(const Shape& logical);

// One line per batch-inner node ("  conv1 [64, 20, 28, 28] conv2d: batch-inner, 16 lanes"), after
// a header line; for --dump_graph.
std::string LayoutPlanString(const Graph& g, const LayoutPlan& plan, const LowerCtx& ctx);

}  // namespace kiln
