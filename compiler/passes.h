// Graph passes run before lowering, one function each, in one logged sequence (RunPasses).
//
//   std::vector<int> roots = {loss_id, new_w_id};
//   kiln::RunPasses(g, roots, /*dump=*/false);   // roots are remapped in place
#pragma once

#include <string>
#include <vector>

#include "dsl/graph.h"

namespace kiln {

// Constant folding: a node whose inputs are all constants becomes a constant when its op has a
// fold hook (OpDef::fold), which computes the value. Returns the number of nodes folded.
int FoldConstants(Graph& g, const std::vector<int>& roots);
// Common-subexpression elimination: nodes with the same op, inputs and attributes are merged
// (their consumers and `roots` are redirected). Returns the number of nodes merged.
int EliminateCommonSubexpressions(Graph& g, std::vector<int>& roots);
// Dead-code elimination is implicit: only nodes reachable from the roots are lowered; this
// returns how many nodes of the graph are dead.
int CountDeadNodes(const Graph& g, const std::vector<int>& roots);

// max_pool2d(relu(x)) as relu(max_pool2d(x)), both exact (relu is monotone): the argmax is taken
// over x and the gather applies the ReLU (Pool2dAttrs::relu), so the forward never computes the
// full-resolution relu(x) and the gradient takes the ReLU's step on the pooled values before the
// scatter, instead of multiplying the full-resolution gradient by a mask. Results are bitwise the
// same: in a window with no positive value both forms give 0 and a zero gradient. Rewrites in
// place the argmax and the gather of each max pool of a ReLU whose argmax nothing else reads
// (the ReLU node stays for its other readers, and is dead code otherwise). Run it before
// differentiating; `external` are ids used outside the graph (the model's inputs and outputs).
// Returns the number of pools fused.
int FuseReluIntoMaxPool(Graph& g, const std::vector<int>& external);

// Runs the three passes above FuseReluIntoMaxPool in order; with `dump`, prints the graph after
// each to stderr.
void RunPasses(Graph& g, std::vector<int>& roots, bool dump);

}  // namespace kiln
