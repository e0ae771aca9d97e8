#include "compiler/passes.h"

#include <cmath>
#include <cstdio>
#include <map>
#include <tuple>

#include "dsl/op_def.h"

namespace kiln {
namespace {

// Value of a foldable op on constant inputs; false if the op is not folded.
bool Evaluate(OpKind op, const std::vector<double>& x, double* out) {
  switch (op) {
    case OpKind::kAdd:
      *out = x[0] + x[1];
      return true;
    case OpKind::kSub:
      *out = x[0] - x[1];
      return true;
    case OpKind::kMul:
      *out = x[0] * x[1];
      return true;
    case OpKind::kDiv:
      *out = x[0] / x[1];
      return true;
    case OpKind::kRelu:
      *out = x[0] > 0 ? x[0] : 0;
      return true;
    case OpKind::kExp:
      *out = std::exp(x[0]);
      return true;
    case OpKind::kLog:
      *out = std::log(x[0]);
      return true;
    case OpKind::kSquare:
      *out = x[0] * x[0];
      return true;
    case OpKind::kSqrt:
      *out = std::sqrt(x[0]);
      return true;
    case OpKind::kReshape:
    case OpKind::kBroadcastTo:
    case OpKind::kTranspose:
      *out = x[0];
      return true;
    default:
      return false;
  }
}

}  // namespace

int FoldConstants(Graph& g, const std::vector<int>& roots) {
  int folded = 0;
  std::vector<Node>& nodes = g.mutable_nodes();
  for (int id : g.Reachable(roots)) {
    Node& n = nodes[id];
    if (n.inputs.empty() || n.dtype != DType::kFloat) continue;
    std::vector<double> x;
    for (int in : n.inputs) {
      if (nodes[in].op != OpKind::kConstant) break;
      x.push_back(nodes[in].attrs.scalar);
    }
    double v;
    if (x.size() != n.inputs.size() || !Evaluate(n.op, x, &v)) continue;
    n.op = OpKind::kConstant;
    n.inputs.clear();
    n.attrs = Attrs();
    n.attrs.scalar = v;
    n.attrs.ints = n.shape;
    ++folded;
  }
  return folded;
}

int EliminateCommonSubexpressions(Graph& g, std::vector<int>& roots) {
  std::vector<Node>& nodes = g.mutable_nodes();
  std::vector<int> remap(nodes.size());
  using Key = std::tuple<int, const OpDef*, std::vector<int>, std::vector<int64_t>, double,
                         std::vector<double>, bool, Shape>;
  std::map<Key, int> seen;
  int merged = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    Node& n = nodes[i];
    remap[i] = static_cast<int>(i);
    for (int& in : n.inputs) in = remap[in];
    if (DefOf(n).pattern == Pattern::kSource) continue;
    Key key{static_cast<int>(n.op), n.custom,      n.inputs,     n.attrs.ints,
            n.attrs.scalar,         n.attrs.reals, n.attrs.flag, n.shape};
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
