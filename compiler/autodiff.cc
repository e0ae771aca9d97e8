#include "compiler/autodiff.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "dsl/api.h"
#include "dsl/op_def.h"

namespace kiln {

Value Unbroadcast(Value g, Shape shape) {
  if (!g.valid() || g.shape() == shape) return g;
  const Shape& gs = g.shape();
  size_t offset = gs.size() - shape.size();
  std::vector<int64_t> axes;
  for (size_t i = 0; i < gs.size(); ++i) {
    if (i < offset || (shape[i - offset] == 1 && gs[i] != 1))
      axes.push_back(static_cast<int64_t>(i));
  }
  Value s = axes.empty() ? g : Sum(g, axes, false);
  return s.shape() == shape ? s : Reshape(s, shape);
}

absl::StatusOr<std::vector<Value>> Gradients(Value loss, const std::vector<Value>& wrt,
                                             const VjpOverrides* overrides) {
  if (!loss.valid()) return absl::InvalidArgumentError("loss is not a valid value");
  Graph& g = *loss.graph();
  if (!g.status().ok()) return g.status();
  if (loss.dtype() != DType::kFloat || !loss.shape().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the loss '", loss.name(), "' must be a float scalar, got ", DTypeName(loss.dtype()),
        ShapeString(loss.shape()), " (reduce it with Mean or Sum)"));
  }
  const int n = loss.id() + 1;
  // on_path[i]: node i depends on some wrt value and the loss depends on node i.
  std::vector<bool> from_wrt(n, false), to_loss(n, false);
  for (const Value& w : wrt) {
    if (!w.valid()) return absl::InvalidArgumentError("gradient requested for an invalid value");
    if (w.dtype() != DType::kFloat) {
      return absl::InvalidArgumentError(absl::StrCat("gradient requested for '", w.name(),
                                                     "' of dtype ", DTypeName(w.dtype()),
                                                     ": only float values have gradients"));
    }
    if (w.id() < n) from_wrt[w.id()] = true;
  }
  for (int i = 0; i < n; ++i) {
    const Node& node = g.node(i);
    if (node.dtype != DType::kFloat) continue;  // no gradient flows through integers
    for (int in : node.inputs) {
      if (from_wrt[in]) from_wrt[i] = true;
    }
  }
  for (int id : g.Reachable({loss.id()})) to_loss[id] = true;

  std::map<int, Value> grad;
  const std::string old_scope = g.name_scope();
  g.set_name_scope("grad/");
  grad[loss.id()] = g.Constant(1.0);
  absl::Status error;
  for (int i = n - 1; i >= 0 && error.ok(); --i) {
    if (!from_wrt[i] || !to_loss[i]) continue;
    auto it = grad.find(i);
    if (it == grad.end()) continue;
    const Node node = g.node(i);  // a copy: the VJP appends nodes and may move the node list
    const OpDef& def = DefOf(node);
    if (def.pattern == Pattern::kSource) continue;
    bool needs = false;
    for (int in : node.inputs) needs |= from_wrt[in];
    if (!needs) continue;
    VjpFn vjp = def.vjp;
    if (overrides != nullptr && overrides->count(node.op)) vjp = overrides->at(node.op);
    if (vjp == nullptr) {
      error = absl::UnimplementedError(
          absl::StrCat("op ", def.name, " (node '", node.name,
                       "') has no gradient, but lies on a path from a parameter to the loss '",
                       loss.name(), "'"));
      break;
    }
    std::vector<Value> x;
    for (int in : node.inputs) x.push_back(g.value(in));
    VjpArgs args{x, g.value(i), it->second, node.attrs};
    std::vector<Value> dx = vjp(args);
    for (size_t k = 0; k < node.inputs.size(); ++k) {
      int in = node.inputs[k];
      if (!from_wrt[in] || k >= dx.size() || !dx[k].valid()) continue;
      Value d = Unbroadcast(dx[k], g.node(in).shape);
      auto acc = grad.find(in);
      if (acc == grad.end()) {
        grad[in] = d;
      } else {
        acc->second = acc->second + d;
      }
    }
  }
  g.set_name_scope(old_scope);
  if (!error.ok()) return error;
  if (!g.status().ok()) {
    return absl::InternalError(
        absl::StrCat("building the backward graph failed: ", g.status().message()));
  }
  std::vector<Value> out;
  for (const Value& w : wrt) {
    auto it = grad.find(w.id());
    if (it == grad.end()) {
      return absl::InvalidArgumentError(absl::StrCat("'", w.name(), "' does not affect the loss '",
                                                     loss.name(), "': it has no gradient"));
    }
    out.push_back(it->second);
  }
  return out;
}

}  // namespace kiln
