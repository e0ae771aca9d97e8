#include "compiler/passes.h"

#include <cstdio>
#include <map>
#include <string>
#include <tuple>

#include "dsl/op_def.h"

namespace kiln {

int FoldConstants(Graph& g, const std::vector<int>& roots) {
  int folded = 0;
  std::vector<Node>& nodes = g.mutable_nodes();
  for (int id : g.Reachable(roots)) {
    Node& n = nodes[id];
    if (n.inputs.empty() || n.dtype != DType::kFloat) continue;
    const OpDef& def = DefOf(n);
    if (def.fold == nullptr) continue;
    std::vector<double> x;
    for (int in : n.inputs) {
      if (nodes[in].op != OpKind::kConstant) break;
      x.push_back(nodes[in].attrs.Get<ConstantAttrs>().value);
    }
    if (x.size() != n.inputs.size()) continue;
    const double value = def.fold(x, n.attrs);
    n.op = OpKind::kConstant;
    n.custom = nullptr;
    n.inputs.clear();
    n.attrs = Attrs{ConstantAttrs{value, n.shape}};
    ++folded;
  }
  return folded;
}

int EliminateCommonSubexpressions(Graph& g, std::vector<int>& roots) {
  std::vector<Node>& nodes = g.mutable_nodes();
  std::vector<int> remap(nodes.size());
  using Key = std::tuple<int, const OpDef*, std::vector<int>, std::string, Shape>;
  std::map<Key, int> seen;
  int merged = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    Node& n = nodes[i];
    remap[i] = static_cast<int>(i);
    for (int& in : n.inputs) in = remap[in];
    if (DefOf(n).pattern == Pattern::kSource) continue;
    Key key{static_cast<int>(n.op), n.custom, n.inputs, n.attrs.Key(), n.shape};
    auto [it, inserted] = seen.emplace(key, static_cast<int>(i));
    if (!inserted) {
      remap[i] = it->second;
      ++merged;
    }
  }
  for (int& r : roots) r = remap[r];
  return merged;
}

int CountDeadNodes(const Graph& g, const std::vector<int>& roots) {
  return g.size() - static_cast<int>(g.Reachable(roots).size());
}

int FuseReluIntoMaxPool(Graph& g, const std::vector<int>& external) {
  std::vector<Node>& nodes = g.mutable_nodes();
  std::vector<int> uses(nodes.size(), 0);
  for (const Node& n : nodes) {
    for (int in : n.inputs) ++uses[in];
  }
  for (int id : external) {
    if (id >= 0 && id < static_cast<int>(uses.size())) ++uses[id];
  }
  int fused = 0;
  for (Node& gather : nodes) {
    if (gather.op != OpKind::kMaxPool2DGather || gather.inputs.size() != 2) continue;
    Pool2dAttrs pool = gather.attrs.Get<Pool2dAttrs>();
    Node& relu = nodes[gather.inputs[0]];
    Node& argmax = nodes[gather.inputs[1]];
    if (pool.relu || relu.op != OpKind::kRelu || argmax.op != OpKind::kMaxPool2DArgmax ||
        argmax.inputs != std::vector<int>{relu.id} || uses[argmax.id] != 1) {
      continue;
    }
    const int x = relu.inputs[0];
    argmax.inputs[0] = x;
    gather.inputs[0] = x;
    uses[relu.id] -= 2;
    uses[x] += 2;
    pool.relu = true;
    gather.attrs.op = pool;
    ++fused;
  }
  return fused;
}

void RunPasses(Graph& g, std::vector<int>& roots, bool dump) {
  auto log = [&](const char* pass, int count) {
    if (!dump) return;
    std::fprintf(stderr, "== after %s (%d changed) ==\n%s", pass, count, g.Dump(roots).c_str());
  };
  log("build", 0);
  log("fold_constants", FoldConstants(g, roots));
  log("cse", EliminateCommonSubexpressions(g, roots));
  log("dce", CountDeadNodes(g, roots));
}

}  // namespace kiln
