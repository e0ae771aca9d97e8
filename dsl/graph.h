// The computation graph: typed nodes with static shapes, built through the functions in dsl/api.h.
//
//   kiln::Graph g;
//   kiln::Value x = g.Input("x", {16, 784});
//   kiln::Value w = g.Parameter("w", {784, 10}, kiln::Initializer::XavierUniform());
//   kiln::Value y = kiln::MatMul(x, w);
//   if (!g.status().ok()) ...   // first shape error: op, node name, shapes, what was expected
//
// Shape errors do not throw: the first one is kept on the graph and later ops on an invalid Value
// produce invalid Values silently, so model code stays linear; compile() returns the error. An
// invalid Value keeps its graph (`graph()->status()` is the first error); reading its node, shape,
// dtype or name ends the program with a message naming the failed op and that error, as
// `StatusOr::value()` does on an error. Test `valid()` first.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/types.h"
#include "dsl/attrs.h"

namespace kiln {

enum class OpKind {
#define KILN_OP(Name, str) k##Name,
#include "dsl/ops.def"
#undef KILN_OP
  kCustom,  // an op defined outside the library: Node::custom points at its OpDef
};
struct OpDef;
constexpr int kNumOps = 0
#define KILN_OP(Name, str) +1
#include "dsl/ops.def"
#undef KILN_OP
    ;

struct Node {
  int id = -1;
  OpKind op = OpKind::kConstant;
  std::vector<int> inputs;
  Shape shape;
  DType dtype = DType::kFloat;
  std::string name;
  Attrs attrs;
  const OpDef* custom = nullptr;  // set only for OpKind::kCustom
};

class Graph;

// A handle to a node's output. Cheap to copy. An invalid Value (`!valid()`) stands for a failed op
// (or is default-constructed); it keeps the graph the op was applied on.
class Value {
 public:
  Value() = default;
  Value(Graph* g, int id) : graph_(g), id_(id) {}
  bool valid() const { return graph_ != nullptr && id_ >= 0; }
  Graph* graph() const { return graph_; }  // null only for a default-constructed Value
  int id() const { return id_; }           // -1 when invalid
  // These end the program with a message naming the failed op when !valid().
  const Node& node() const;
  const Shape& shape() const { return node().shape; }
  DType dtype() const { return node().dtype; }
  int rank() const { return static_cast<int>(shape().size()); }
  const std::string& name() const { return node().name; }

 private:
  friend class Graph;
  [[noreturn]] void DieInvalid() const;
  Graph* graph_ = nullptr;
  int id_ = -1;
  int failure_ = -1;  // invalid: index into the graph's list of failed ops
};

// Whether a graph is built for training or for evaluation: layers such as Dropout and BatchNorm
// build different nodes for each.
enum class Mode { kTrain, kEval };

// One row of a model summary: a layer applied once.
struct LayerRecord {
  std::string name;    // e.g. "conv1"
  std::string type;    // e.g. "Conv2D"
  Shape output;        // output shape of this application
  int64_t params = 0;  // trainable parameters it owns (counted at its first application)
};

class Graph {
 public:
  explicit Graph(Mode mode = Mode::kTrain) : mode_(mode) {}
  Mode mode() const { return mode_; }
  bool training() const { return mode_ == Mode::kTrain; }
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  // A fed tensor (data, labels, hyperparameters such as the learning rate when rank 0).
  Value Input(const std::string& name, Shape shape, DType dtype = DType::kFloat);
  // A trainable tensor with its initializer. Names must be unique among parameters.
  Value Parameter(const std::string& name, Shape shape, Initializer init);
  // Non-trainable state carried from step to step (e.g. batch-norm running statistics):
  // initialized like a parameter, updated by the training step through SetBufferUpdate, read by
  // both steps and checkpointed with the parameters.
  Value Buffer(const std::string& name, Shape shape, Initializer init);
  // The value `buffer` takes after each training step (ignored in evaluation graphs).
  void SetBufferUpdate(Value buffer, Value new_value);
  const std::vector<std::pair<int, int>>& buffer_updates() const { return buffer_updates_; }
  // Records an error found by a composite or layer (the first error is kept).
  void ReportError(absl::Status s) { RecordError(std::move(s)); }
  // Records `error` for the op or layer `what` (e.g. "softmax_cross_entropy") and returns the
  // invalid Value that stands for its result.
  Value Fail(const std::string& what, absl::Status error);
  // What an invalid Value of this graph stands for: the op that failed, in its error context.
  std::string FailureOf(const Value& v) const;

  // While alive, errors recorded on the graph are prefixed with `what`, e.g. "Linear 'fc'", so a
  // shape error names the layer or loss the user called as well as the internal node. Nests.
  class ErrorContext {
   public:
    ErrorContext(Graph* g, std::string what);
    ~ErrorContext();
    ErrorContext(const ErrorContext&) = delete;
    ErrorContext& operator=(const ErrorContext&) = delete;

   private:
    Graph* graph_;
  };
  // Set by layers whose nodes depend on the mode; an evaluation step refuses a training graph
  // that has any.
  void mark_mode_dependent() { mode_dependent_ = true; }
  bool mode_dependent() const { return mode_dependent_; }
  // Layers record their applications here for Summary().
  void RecordLayer(LayerRecord r) { layers_.push_back(std::move(r)); }
  const std::vector<LayerRecord>& layers() const { return layers_; }
  // A model summary like Keras' and torchinfo's: layer, output shape, parameter count, totals.
  std::string Summary() const;
  // A tensor filled with one value.
  Value Constant(double value, Shape shape = {});

  // Adds a node after running its op's shape rule. On error records it (the first one is kept)
  // and returns an invalid Value. `name` may be empty: a unique one is generated.
  Value AddNode(OpKind op, const std::vector<Value>& inputs, Attrs attrs = {},
                const std::string& name = "");
  // The same for an op defined outside the library (see docs/CUSTOM_OPS.md). `def` must outlive
  // the graph and every step compiled from it.
  Value AddCustomNode(const OpDef& def, const std::vector<Value>& inputs, Attrs attrs = {},
                      const std::string& name = "");

  const absl::Status& status() const { return status_; }
  const std::vector<Node>& nodes() const { return nodes_; }
  const Node& node(int id) const { return nodes_[id]; }
  int size() const { return static_cast<int>(nodes_.size()); }
  Value value(int id) { return Value(this, id); }
  std::vector<int> Parameters() const;  // ids of parameter nodes in creation order

  // Prefix for generated node names ("grad/", "sgd/"), so dumps show which pass made a node.
  void set_name_scope(std::string scope) { scope_ = std::move(scope); }
  const std::string& name_scope() const { return scope_; }

  // Text dump (one line per node: id, name, op, dtype, shape, inputs) of the nodes `roots`
  // depend on (all nodes when empty), and the same as Graphviz DOT.
  std::string Dump(const std::vector<int>& roots = {}) const;
  std::string ToDot(const std::vector<int>& roots = {}) const;
  // Everything about those nodes that decides the code they compile to, attributes in full
  // precision and custom ops by name (the compile cache's key material).
  std::string Fingerprint(const std::vector<int>& roots) const;
  // Ids reachable backwards from `roots`, in increasing (topological) order.
  std::vector<int> Reachable(const std::vector<int>& roots) const;

  // Replaces the node list (used by compiler passes that rewrite the graph).
  std::vector<Node>& mutable_nodes() { return nodes_; }

 private:
  void RecordError(absl::Status s);
  std::string ContextPrefix() const;
  Value Add(OpKind op, const OpDef& def, const std::vector<Value>& inputs, Attrs attrs,
            const std::string& name);
  std::vector<Node> nodes_;
  absl::Status status_;
  std::string scope_;
  int param_count_ = 0;
  Mode mode_ = Mode::kTrain;
  bool mode_dependent_ = false;
  std::vector<std::pair<int, int>> buffer_updates_;  // buffer id, new value id
  std::vector<LayerRecord> layers_;
  std::vector<std::string> context_;   // ErrorContext stack
  std::vector<std::string> failures_;  // the ops invalid Values stand for
};

const char* OpName(OpKind op);

}  // namespace kiln
