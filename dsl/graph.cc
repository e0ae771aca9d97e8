#include "dsl/graph.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "dsl/op_def.h"

namespace kiln {

const char* OpName(OpKind op) { return GetOpDef(op).name; }

const Node& Value::node() const {
  if (!valid()) DieInvalid();
  return graph_->node(id_);
}

void Value::DieInvalid() const {
  if (graph_ == nullptr) {
    std::fprintf(stderr,
                 "kiln: the node, shape, dtype or name of a default-constructed Value was read: it "
                 "stands for no op and belongs to no graph\n");
  } else {
    std::fprintf(stderr,
                 "kiln: the node, shape, dtype or name of an invalid Value was read: it is the "
                 "result of the failed %s; the graph's first error: %s\n",
                 graph_->FailureOf(*this).c_str(), graph_->status().ToString().c_str());
  }
  std::abort();
}

std::string Graph::ContextPrefix() const {
  std::string out;
  for (const std::string& c : context_) absl::StrAppend(&out, c, ": ");
  return out;
}

void Graph::RecordError(absl::Status s) {
  if (!status_.ok() || s.ok()) return;
  status_ = context_.empty() ? std::move(s)
                             : absl::Status(s.code(), absl::StrCat(ContextPrefix(), s.message()));
}

Value Graph::Fail(const std::string& what, absl::Status error) {
  RecordError(std::move(error));
  failures_.push_back(ContextPrefix() + what);
  Value v(this, -1);
  v.failure_ = static_cast<int>(failures_.size()) - 1;
  return v;
}

std::string Graph::FailureOf(const Value& v) const {
  if (v.graph_ != this || v.failure_ < 0 || v.failure_ >= static_cast<int>(failures_.size())) {
    return "op (unknown)";
  }
  return failures_[v.failure_];
}

Graph::ErrorContext::ErrorContext(Graph* g, std::string what) : graph_(g) {
  if (graph_ != nullptr) graph_->context_.push_back(std::move(what));
}

Graph::ErrorContext::~ErrorContext() {
  if (graph_ != nullptr) graph_->context_.pop_back();
}

Value Graph::Input(const std::string& name, Shape shape, DType dtype) {
  for (int64_t d : shape) {
    if (d <= 0) {
      return Fail(absl::StrCat("input '", name, "'"),
                  absl::InvalidArgumentError(absl::StrCat(
                      "input '", name, "': every dimension must be positive, got shape ",
                      ShapeString(shape))));
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
      return Fail(absl::StrCat("parameter '", name, "'"),
                  absl::InvalidArgumentError(absl::StrCat(
                      "parameter '", name, "' is defined twice: parameter names must be unique")));
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
  return AddNode(OpKind::kConstant, {}, Attrs{ConstantAttrs{value, std::move(shape)}});
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
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Value& v = inputs[i];
    // The result of a failed op: the error was recorded already; this op fails with it.
    if (v.graph() == this && !v.valid()) return v;
    if (v.graph() == nullptr) {
      return Fail(absl::StrCat("op ", def.name),
                  absl::InvalidArgumentError(absl::StrCat(
                      "op ", def.name, ": input ", i,
                      " is a default-constructed Value (it stands for no node of any graph)")));
    }
    if (v.graph() != this) {
      return Fail(absl::StrCat("op ", def.name),
                  absl::InvalidArgumentError(
                      absl::StrCat("op ", def.name, ": input ", i,
                                   v.valid() ? absl::StrCat(" '", v.name(), "'") : std::string(),
                                   " belongs to another graph")));
    }
    in.push_back(&nodes_[v.id()]);
  }
  Node n;
  n.id = size();
  n.op = op;
  if (op == OpKind::kCustom) n.custom = &def;
  n.name = name.empty() ? absl::StrCat(scope_, def.name, "_", n.id) : scope_ + name;
  const std::string what = absl::StrCat("op ", def.name, " (node '", n.name, "')");
  if (def.arity >= 0 && static_cast<int>(in.size()) != def.arity) {
    return Fail(what, absl::InvalidArgumentError(absl::StrCat(what, ": expected ", def.arity,
                                                              " inputs, got ", in.size())));
  }
  absl::StatusOr<TypeAndShape> ts = def.infer(in, attrs);
  if (!ts.ok()) {
    std::vector<std::string> shapes;
    for (const Node* x : in) {
      shapes.push_back(
          absl::StrCat("'", x->name, "' ", DTypeName(x->dtype), ShapeString(x->shape)));
    }
    return Fail(what, absl::InvalidArgumentError(absl::StrCat(
                          what, ": ", ts.status().message(),
                          shapes.empty() ? "" : "; inputs: ", absl::StrJoin(shapes, ", "))));
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
  if (n.op == OpKind::kParameter || n.op == OpKind::kBuffer) {
    return absl::StrCat(" init=", InitializerString(n.attrs.init));
  }
  return n.attrs.ToString();
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
  for (int id : Reachable(roots)) {
    const Node& n = nodes_[id];
    absl::StrAppend(&out, n.id, " ", static_cast<int>(n.op), " ", DefOf(n).name, " ",
                    DTypeName(n.dtype), ShapeString(n.shape), " in=", absl::StrJoin(n.inputs, ","),
                    " attrs=", n.attrs.Key(), " name=", n.name, "\n");
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
