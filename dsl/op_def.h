// The contract every primitive op fulfils, in one OpDef per op (see dsl/ops.def for the list):
// shape-and-type rule, VJP written in DSL ops, Halide lowering (one named Func per node) and an
// optional CPU schedule hook. The compiler reads ops only through DefOf(node).
//
//   const kiln::OpDef& def = kiln::GetOpDef(kiln::OpKind::kMatMul);
//   absl::StatusOr<kiln::TypeAndShape> ts = def.infer({&a, &b}, attrs);
#pragma once

#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "Halide.h"
#include "absl/status/statusor.h"
#include "dsl/graph.h"

namespace kiln {

// Fusion pattern: decides the default schedule. Elementwise/broadcast/injective Funcs are inlined
// into their consumers; reductions and complex ops are materialized and get a real schedule.
enum class Pattern { kSource, kElementwise, kInjective, kReduction, kComplex };

struct TypeAndShape {
  DType dtype;
  Shape shape;
};

// Shape rule: the only place an op's output shape is computed. Errors are InvalidArgument with
// "expected X, got Y"; the graph adds the op and node name.
using InferFn = absl::StatusOr<TypeAndShape> (*)(const std::vector<const Node*>& in,
                                                 const Attrs& attrs);

// VJP: given the node's inputs x, its output y and the gradient dy (shape of y), the gradients of
// each input (an invalid Value where an input gets none). Gradients may have the broadcast output
// shape: autodiff sums them back to the input's shape centrally.
struct VjpArgs {
  std::vector<Value> x;
  Value y;
  Value dy;
  const Attrs& attrs;
};
using VjpFn = std::vector<Value> (*)(const VjpArgs& a);

class LowerCtx;

// Helper Funcs or reduction domains an op's lowering hands to its schedule hook, each under a
// role name ("acc", "pad"): the hook asks for what it places by name, never by position.
//
//   Lowered l{f, {{"acc", acc}}, {{"r", r}}};             // in the lowering
//   l.helpers.Get("acc").compute_at(l.f, xo);              // in the schedule hook
//   if (Halide::Func* pad = l.helpers.Find("pad")) ...     // a helper made only sometimes
template <typename T>
class Named {
 public:
  Named() = default;
  Named(std::initializer_list<std::pair<std::string, T>> items) : items_(items) {}

  void Add(std::string role, T value) { items_.emplace_back(std::move(role), std::move(value)); }
  // Null when the lowering made no entry of that role.
  T* Find(std::string_view role) {
    for (auto& [name, value] : items_) {
      if (name == role) return &value;
    }
    return nullptr;
  }
  // The entry of that role; the lowering and its schedule disagreeing is an error of the op,
  // reported as a Halide::CompileError (Internal at the lowering boundary) naming the role.
  T& Get(std::string_view role) {
    if (T* value = Find(role)) return *value;
    throw Halide::CompileError("the op's schedule asks for '" + std::string(role) +
                               "', which its lowering did not return");
  }
  auto begin() { return items_.begin(); }
  auto end() { return items_.end(); }

 private:
  std::vector<std::pair<std::string, T>> items_;
};

// The Halide form of one node: `f` is the node's value; `helpers` the Funcs (accumulators,
// padded copies) and `rdoms` the reduction domains its schedule hook places, by role.
struct Lowered {
  Halide::Func f;
  Named<Halide::Func> helpers;
  Named<Halide::RDom> rdoms;
};
using LowerFn = Lowered (*)(LowerCtx& ctx, const Node& n, const std::vector<Halide::Func>& in);
using ScheduleFn = void (*)(LowerCtx& ctx, const Node& n, Lowered& l);
// Constant folding: the op's value when every input is a constant fill (`x` holds their values);
// the result fills the node's shape.
using FoldFn = double (*)(const std::vector<double>& x, const Attrs& attrs);
// How many times a complex op reads each element of its input `i` (a matmul's left operand: once
// per output column). The lowering computes an elementwise producer of an input read more than
// once into a buffer of its own, and inlines it into an input read once.
using ReadsFn = int64_t (*)(const Node& n, int i);
// Schedules a complex op's value tile by tile inside `consumer`, a step output of the node's shape
// that reads it elementwise and is its only reader (a weight gradient's optimizer update, a
// product copied into an output buffer): the consumer gets the op's loop nest and its accumulator
// tile, the node's Func stays inlined, and the value is never stored whole. False when the op's
// schedule cannot (the caller then schedules both as usual).
using EpilogueFn = bool (*)(LowerCtx& ctx, const Node& n, Lowered& l, Halide::Func consumer);

struct OpDef {
  const char* name;
  Pattern pattern;
  int arity;  // number of inputs
  InferFn infer;
  VjpFn vjp;  // nullptr: not differentiable (an error if it lies on a path to a parameter)
  LowerFn lower;
  ScheduleFn schedule;      // nullptr: the default for the pattern
  FoldFn fold = nullptr;    // nullptr: never folded
  ReadsFn reads = nullptr;  // complex ops; nullptr: every input read many times
  // The output is an [N, C, H, W] activation whose axis 0 is the batch: the layout planner
  // (compiler/layout.h) may store it batch-innermost, and the op's lowering and schedule then read
  // LowerCtx::layout() (convolutions, pooling and their backward ops).
  bool batch_activation = false;
  EpilogueFn epilogue = nullptr;  // nullptr: the value is always stored whole
};

// The definition of a library op (not kCustom).
const OpDef& GetOpDef(OpKind op);
// The definition behind a node: the library's, or the node's own for a custom op.
const OpDef& DefOf(const Node& n);

// GPU thread counts: the smallest power of two covering `extent`, at most `cap`.
int GpuExtent(int64_t extent, int cap);

// The physical layout of a materialized intermediate (compiler/layout.h plans it). Row-major:
// logical axis r-1 innermost. Batch-inner: logical axis 0 (the batch) innermost, the other axes
// row-major outside it ([N, C, H, W] stored as C, H, W, N).
enum class Layout { kRowMajor, kBatchInner };

// Lowering context. DSL shapes are logical, outermost first; Halide's dimension 0 is innermost:
// logical axis i of a rank-r tensor is Halide dimension r-1-i. Op code only ever uses logical
// coordinates, through Vars(), At(), Define(), Ref(), ReductionDomain() and RVars(), so the
// storage order of a Func (StoreAs) can change without touching its definition.
class LowerCtx {
 public:
  LowerCtx(Halide::Type float_type, Halide::Target target);

  Halide::Type float_type() const { return float_type_; }
  Halide::Type TypeOf(DType t) const;
  const Halide::Target& target() const { return target_; }
  int vector_width() const { return vector_width_; }  // natural lanes of the float type
  // True when the step runs on a GPU (a CUDA target): schedules map loops to blocks and threads.
  bool gpu() const { return target_.has_gpu_feature(); }

  // Pure variables for a rank-r output, in logical order. The Var of logical axis i is named
  // "d<r-1-i>", i.e. after its Halide dimension: "d0" is always the innermost. (Halide names its
  // own anonymous Vars "v<N>", so those names must not be used.)
  std::vector<Halide::Var> Vars(int rank) const;
  // Reads f at logical coordinates.
  Halide::Expr At(const Halide::Func& f, const std::vector<Halide::Expr>& logical) const;
  Halide::Expr At(const Halide::Func& f, const std::vector<Halide::Var>& logical) const;
  // Defines f at logical coordinates.
  void Define(Halide::Func& f, const std::vector<Halide::Var>& logical,
              const Halide::Expr& e) const;
  // f at logical coordinates as a reference: for update definitions (`ctx.Ref(acc, v) += e`)
  // and the elements of a Tuple-valued Func (`ctx.Ref(best, v)[0]`).
  Halide::FuncRef Ref(const Halide::Func& f, const std::vector<Halide::Var>& logical) const;
  // A reduction domain over logical extents (outermost first): Halide iterates an RDom's first
  // dimension innermost, so the last extent becomes the innermost loop. RVars() gives its
  // variables back in logical order.
  Halide::RDom ReductionDomain(const Shape& logical_extents, const std::string& name) const;
  std::vector<Halide::RVar> RVars(const Halide::RDom& r) const;
  // Reads f (of shape `in`) for an output position under NumPy broadcasting (axes aligned right,
  // size-1 and missing axes read at 0).
  Halide::Expr Broadcast(const Halide::Func& f, const Shape& in,
                         const std::vector<Halide::Var>& out) const;
  // A new Func named after the node ("<name>" or "<name>_<suffix>"), made a valid Halide name.
  Halide::Func NewFunc(const Node& n, const std::string& suffix = "") const;

  // The graph being lowered, for the shapes of a node's inputs.
  void set_graph(const Graph* g) { graph_ = g; }
  const Shape& input_shape(const Node& n, int i) const { return graph_->node(n.inputs[i]).shape; }
  DType input_dtype(const Node& n, int i) const { return graph_->node(n.inputs[i]).dtype; }
  OpKind input_op(const Node& n, int i) const { return graph_->node(n.inputs[i]).op; }

  // The 1-based training step as a rank-0 Func, when the step has one (dropout masks use it);
  // otherwise a constant 0.
  void set_step(Halide::Func f) { step_ = f; }
  Halide::Expr Step() const;
  // The position of the step's first example in the global batch (data-parallel training: rank x
  // batch) as a rank-0 Func, when the step has one; otherwise a constant 0.
  void set_example_offset(Halide::Func f) { example_offset_ = f; }
  Halide::Expr ExampleOffset() const;

  // Source nodes (inputs, parameters) are provided by the compiler.
  void set_source_fn(std::function<Halide::Func(const Node&)> fn) { source_fn_ = std::move(fn); }
  Halide::Func Source(const Node& n) const { return source_fn_(n); }
  // A helper Func (by role) of a node lowered before this one, in the same pipeline: null when
  // the node made none of that role or is read from a buffer (an earlier segment's value). Lets
  // an op reuse what its producer computed anyway (a max-pool gather reads the window maximum its
  // argmax found).
  void set_helper_fn(std::function<Halide::Func*(int id, std::string_view role)> fn) {
    helper_fn_ = std::move(fn);
  }
  Halide::Func* Helper(int id, std::string_view role) const {
    return helper_fn_ ? helper_fn_(id, role) : nullptr;
  }
  const Node& input(const Node& n, int i) const { return graph_->node(n.inputs[i]); }
  const Graph& graph() const { return *graph_; }

  // Default schedule of a materialized Func of logical shape `shape`: vectorize the innermost
  // dimension at the native width, parallelize the outermost when the work is big enough; the
  // same for its update definitions (reduction variables stay inside).
  // On a GPU target it is GpuTileAll.
  // Batch-inner (`layout`): stored so, vectorized over the batch, parallel over channels.
  void ScheduleMaterialized(Halide::Func f, const Shape& shape, int64_t work_per_element,
                            Layout layout = Layout::kRowMajor) const;
  // Rows of an outermost axis of `rows` rows per parallel task, for `work` units in all: 0 when
  // the work is not worth the threads (under 2^16 units, or one row), else enough rows for at
  // least 2^15 units a task, at most half of them (so both threads get one).
  static int64_t RowsPerTask(int64_t rows, int64_t work);

  // GPU: one kernel per stage of `f` (compute_root; pure definition and every update), its two
  // innermost logical axes tiled over threads (up to 32 x 8, powers of two no larger than the
  // extents, guarded tails), every outer axis fused into one block index, reduction variables
  // serial inside each thread; a Func with updates (a reduction) is one kernel over a wrapper,
  // each thread doing its element's whole reduction in a register. Rank 0: a single-thread
  // kernel per stage.
  void GpuTileAll(Halide::Func f, const Shape& shape) const;
  void GpuTile(Halide::Stage s, const Shape& shape) const;
  // GPU: the reduction `r` (extent `r_extent`) of f's one update, split into chunks of `chunk`
  // summed in parallel: an intermediate over f's logical shape `shape` and the chunk index
  // (Halide's rfactor) is one thread per element, its chunk's sum in a register; f's update then
  // sums the chunks. Returns the RVar f's update now runs over (the chunk index). For reductions
  // long against their output, which a thread per output element runs nearly serially.
  Halide::RVar GpuSplitReduction(Halide::Func f, const Shape& shape, Halide::RVar r,
                                 int64_t r_extent, int chunk) const;

  // The layout planner's decisions (node id -> layout; a node not listed is row-major).
  void set_layouts(std::map<int, Layout> layouts) { layouts_ = std::move(layouts); }
  Layout layout(const Node& n) const { return LayoutOf(n.id); }
  Layout input_layout(const Node& n, int i) const { return LayoutOf(n.inputs[i]); }
  // Stores a materialized Func of logical rank `rank` in `layout` (Halide's reorder_storage).
  void StoreAs(Halide::Func f, int rank, Layout layout) const;
  // Vector lanes over a batch of `batch` in the batch-inner layout: the largest power of two no
  // wider than the native vector that divides it (64 -> 16 on AVX-512, 1000 -> 8, 12 -> 4).
  int BatchLanes(int64_t batch) const;
  // Vector registers a schedule may give to a register tile of accumulators, leaving the rest for
  // operands: 24 of AVX-512's 32, 12 of AVX2's 16.
  int AccumulatorRegisters() const;

 private:
  Halide::Type float_type_;
  Halide::Target target_;
  int vector_width_;
  std::function<Halide::Func(const Node&)> source_fn_;
  std::function<Halide::Func*(int, std::string_view)> helper_fn_;
  const Graph* graph_ = nullptr;
  std::optional<Halide::Func> step_, example_offset_;
  std::map<int, Layout> layouts_;
  Layout LayoutOf(int id) const {
    auto it = layouts_.find(id);
    return it == layouts_.end() ? Layout::kRowMajor : it->second;
  }
};

}  // namespace kiln
