// An op defined outside the library, the way a user adds one (see docs/CUSTOM_OPS.md):
// softplus(x) = log(1 + exp(x)), with its shape rule, VJP, Halide lowering and (default) schedule.
//
//   kiln::Value h = kiln::examples::Softplus(kiln::examples::Linear(...)(x));
#pragma once

#include "dsl/graph.h"
#include "dsl/op_def.h"

namespace kiln::examples {

// The op's definition; lives for the whole program.
const OpDef& SoftplusOpDef();
// Adds a softplus node (records a shape error on the graph for non-float input).
Value Softplus(Value x);

}  // namespace kiln::examples
