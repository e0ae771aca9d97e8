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

// Runs the passes above in order; with `dump`, prints the graph after each to stderr.
void RunPasses(Graph& g, std::vector<int>& roots, bool dump);

}  // namespace kiln
