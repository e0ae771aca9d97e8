#include "dsl/graph.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "dsl/op_def.h"

namespace kiln {

const char* OpName(OpKind op) { return GetOpDef(op).name; }

const Node& Value::node() const { return graph_->node(id_); }

void Graph::RecordError(absl::Status s) {
  if (status_.ok()) status_ = std::move(s);
}

Value Graph::Input(const std::string& name, Shape shape, DType dtype) {
  for (int64_t d : shape) {
    if (d <= 0) {
      RecordError(absl::InvalidArgumentError(absl::StrCat(
          "input '", name, "': every dimension must be positive, got shape ", ShapeString(shape))));
      return Value();
    }
  }
  Node n;
  n.id = size();
  n.op = OpKind::kInput;
  n.shape = std::move(shape);
  n.dtype = dtype;
  n.name = name;
  nodes_.push_back(n);
  return Value(this, n.id);
}

Value Graph::Parameter(const std::string& name, Shape shape, Initializer init) {
  for (const Node& n : nodes_) {
    if ((n.op == OpKind::kParameter || n.op == OpKind::kBuffer) && n.name == name) {
      RecordError(absl::InvalidArgumentError(
          absl::StrCat("parameter '", name, "' is defined twice: parameter names must be unique")));
      return Value();
    }
  }
  Value v = Input(name, std::move(shape), DType::kFloat);
  if (!v.valid()) return v;
  nodes_.back().op = OpKind::kParameter;
  nodes_.back().attrs.init = init;
  ++param_count_;
  return v;
}

Value Graph::Buffer(const std::string& name, Shape shape, Initializer init) {
  Value v = Parameter(name, std::move(shape), init);
  if (!v.valid()) return v;
  nodes_.back().op = OpKind::kBuffer;
  return v;
}

void Graph::SetBufferUpdate(Value buffer, Value new_value) {
  if (!buffer.valid() || !new_value.valid()) return;
  if (buffer.node().op != OpKind::kBuffer || buffer.shape() != new_value.shape()) {
    RecordError(absl::InvalidArgumentError(absl::StrCat(
        "buffer update of '", buffer.name(), "': expected a value of shape ",
        ShapeString(buffer.shape()), " for a buffer, got ", ShapeString(new_value.shape()))));
    return;
  }
  buffer_updates_.push_back({buffer.id(), new_value.id()});
}

Value Graph::Constant(double value, Shape shape) {
  Attrs a;
  a.scalar = value;
  a.ints = shape;
  return AddNode(OpKind::kConstant, {}, a);
}

Value Graph::AddNode(OpKind op, const std::vector<Value>& inputs, Attrs attrs,
                     const std::string& name) {
  return Add(op, GetOpDef(op), inputs, std::move(attrs), name);
}

Value Graph::AddCustomNode(const OpDef& def, const std::vector<Value>& inputs, Attrs attrs,
                           const std::string& name) {
  return Add(OpKind::kCustom, def, inputs, std::move(attrs), name);
}

Value Graph::Add(OpKind op, const OpDef& def, const std::vector<Value>& inputs, Attrs attrs,
                 const std::string& name) {
  std::vector<const Node*> in;
  for (const Value& v : inputs) {
    if (!v.valid()) return Value();  // an earlier error was recorded already
    if (v.graph() != this) {
      RecordError(absl::InvalidArgumentError(
          absl::StrCat("op ", def.name, ": input '", v.name(), "' belongs to another graph")));
      return Value();
    }
    in.push_back(&nodes_[v.id()]);
  }
  Node n;
  n.id = size();
  n.op = op;
  if (op == OpKind::kCustom) n.custom = &def;
  n.name = name.empty() ? absl::StrCat(scope_, def.name, "_", n.id) : scope_ + name;
  if (def.arity >= 0 && static_cast<int>(in.size()) != def.arity) {
    RecordError(absl::InvalidArgumentError(absl::StrCat("op ", def.name, " (node '", n.name,
                                                        "'): expected ", def.arity, " inputs, got ",
                                                        in.size())));
    return Value();
  }
  absl::StatusOr<TypeAndShape> ts = def.infer(in, attrs);
  if (!ts.ok()) {
    std::vector<std::string> shapes;
    for (const Node* x : in) {
      shapes.push_back(
          absl::StrCat("'", x->name, "' ", DTypeName(x->dtype), ShapeString(x->shape)));
    }
    RecordError(absl::InvalidArgumentError(
        absl::StrCat("op ", def.name, " (node '", n.name, "'): ", ts.status().message(),
                     shapes.empty() ? "" : "; inputs: ", absl::StrJoin(shapes, ", "))));
    return Value();
  }
  for (const Node* x : in) n.inputs.push_back(x->id);
  n.dtype = ts->dtype;
  n.shape = ts->shape;
  n.attrs = std::move(attrs);
  nodes_.push_back(std::move(n));
  return Value(this, size() - 1);
}

std::string Graph::Summary() const {
  int64_t total = 0, buffers = 0;
  for (const Node& n : nodes_) {
    if (n.op == OpKind::kParameter) total += NumElements(n.shape);
    if (n.op == OpKind::kBuffer) buffers += NumElements(n.shape);
  }
  std::string out =
      absl::StrFormat("%-28s %-22s %12s\n", "Layer (type)", "Output Shape", "Param #");
  out += std::string(64, '=') + "\n";
  for (const LayerRecord& r : layers_) {
    absl::StrAppend(&out, absl::StrFormat("%-28s %-22s %12d\n", r.name + " (" + r.type + ")",
                                          ShapeString(r.output), r.params));
  }
  out += std::string(64, '=') + "\n";
  absl::StrAppend(
      &out, absl::StrFormat("Total params: %d (%.1f KB as float32)\n", total, total * 4 / 1024.0));
  if (buffers > 0) absl::StrAppend(&out, absl::StrFormat("Non-trainable buffers: %d\n", buffers));
  return out;
}

std::vector<int> Graph::Parameters() const {
  std::vector<int> ids;
  for (const Node& n : nodes_) {
    if (n.op == OpKind::kParameter) ids.push_back(n.id);
  }
  return ids;
}

std::vector<int> Graph::Reachable(const std::vector<int>& roots) const {
  if (roots.empty()) {
    std::vector<int> all(nodes_.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int>(i);
    return all;
  }
  std::vector<bool> seen(nodes_.size(), false);
  std::vector<int> stack(roots.begin(), roots.end());
  while (!stack.empty()) {
    int id = stack.back();
    stack.pop_back();
    if (id < 0 || seen[id]) continue;
    seen[id] = true;
    for (int in : nodes_[id].inputs) stack.push_back(in);
  }
  std::vector<int> out;
  for (size_t i = 0; i < seen.size(); ++i) {
    if (seen[i]) out.push_back(static_cast<int>(i));
  }
  return out;
}

namespace {
std::string AttrString(const Node& n) {
  std::string s;
  if (n.op == OpKind::kParameter || n.op == OpKind::kBuffer) {
    s = absl::StrCat(" init=", InitializerString(n.attrs.init));
  }
  if (n.op == OpKind::kConstant) s = absl::StrCat(" value=", n.attrs.scalar);
  if (!n.attrs.ints.empty() && n.op != OpKind::kConstant) {
    absl::StrAppend(&s, " ints=[", absl::StrJoin(n.attrs.ints, ","), "]");
  }
  if (n.attrs.flag) absl::StrAppend(&s, " keepdims");
  return s;
}
}  // namespace

std::string Graph::Dump(const std::vector<int>& roots) const {
  std::string out;
  for (int id : Reachable(roots)) {
    const Node& n = nodes_[id];
    std::vector<std::string> ins;
    for (int i : n.inputs) ins.push_back(absl::StrCat("%", i));
    absl::StrAppend(&out, "%", n.id, " ", n.name, " = ", DefOf(n).name, "(",
                    absl::StrJoin(ins, ", "), ") : ", DTypeName(n.dtype), ShapeString(n.shape),
                    AttrString(n), "\n");
  }
  return out;
}

std::string Graph::Fingerprint(const std::vector<int>& roots) const {
  std::string out;
  auto exact = [](double v) { return absl::StrFormat("%a", v); };
  for (int id : Reachable(roots)) {
    const Node& n = nodes_[id];
    absl::StrAppend(&out, n.id, " ", static_cast<int>(n.op), " ", DefOf(n).name, " ",
                    DTypeName(n.dtype), ShapeString(n.shape), " in=", absl::StrJoin(n.inputs, ","),
                    " ints=", absl::StrJoin(n.attrs.ints, ","), " s=", exact(n.attrs.scalar),
                    " r=");
    for (double r : n.attrs.reals) absl::StrAppend(&out, exact(r), ",");
    absl::StrAppend(&out, " f=", n.attrs.flag, " name=", n.name, "\n");
  }
  return out;
}

std::string Graph::ToDot(const std::vector<int>& roots) const {
  std::string out = "digraph kiln {\n  node [shape=box, fontname=\"monospace\"];\n";
  for (int id : Reachable(roots)) {
    const Node& n = nodes_[id];
    const char* color = n.op == OpKind::kParameter ? "lightblue"
                        : n.op == OpKind::kBuffer  ? "khaki"
                        : n.op == OpKind::kInput   ? "lightgrey"
                                                   : "white";
    absl::StrAppend(&out, "  n", n.id, " [label=\"", n.name, "\\n", DefOf(n).name, " ",
                    DTypeName(n.dtype), ShapeString(n.shape), "\", style=filled, fillcolor=", color,
                    "];\n");
    for (int i : n.inputs) absl::StrAppend(&out, "  n", i, " -> n", n.id, ";\n");
  }
  out += "}\n";
  return out;
}

}  // namespace kiln
