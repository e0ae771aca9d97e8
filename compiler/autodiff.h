// Graph-level reverse-mode automatic differentiation over the ops' VJPs.
//
//   absl::StatusOr<std::vector<kiln::Value>> grads = kiln::Gradients(loss, {w, b});
//
// Adds the backward nodes to the loss's graph (names prefixed "grad/"). Gradients of broadcast
// inputs are summed back to the input's shape here, centrally. Fails with InvalidArgument when the
// loss is not a float scalar or a parameter does not affect it, and with Unimplemented naming the
// node when an op without a VJP lies on a path from a parameter to the loss.
#pragma once

#include <map>
#include <vector>

#include "absl/status/statusor.h"
#include "dsl/graph.h"
#include "dsl/op_def.h"

namespace kiln {

// Replacement VJPs by op, for tests that prove the gradient checker catches a wrong rule.
using VjpOverrides = std::map<OpKind, VjpFn>;

absl::StatusOr<std::vector<Value>> Gradients(Value loss, const std::vector<Value>& wrt,
                                             const VjpOverrides* overrides = nullptr);

// Sums `g` over the axes that broadcasting added or stretched so it takes `shape`.
Value Unbroadcast(Value g, Shape shape);

}  // namespace kiln
