#include "compiler/lower.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"

namespace kiln {
namespace {

// Sets constant bounds and dense row-major strides on a buffer's dimensions (logical shape).
template <typename B>
void ConstrainDense(B buffer, const Shape& shape) {
  int rank = static_cast<int>(shape.size());
  int stride = 1;
  for (int d = 0; d < rank; ++d) {  // Halide dim d is logical axis rank-1-d
    int extent = static_cast<int>(shape[rank - 1 - d]);
    buffer.dim(d).set_bounds(0, extent).set_stride(stride);
    stride *= extent;
  }
}

// The index of a batch-inner intermediate's buffer ([C, H, W, N], BatchLastShape) for the
// logical (n, c, y, x).
std::vector<Halide::Expr> BatchLast(const std::vector<Halide::Var>& v) {
  return {v[1], v[2], v[3], v[0]};
}

std::string Sanitize(const std::string& s) {
  std::string out = s;
  for (char& c : out) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return out;
}

// The first non-injective producer behind a chain of reshapes/transposes/broadcasts, or the first
// node of the chain the step is fed as an argument (`fed`: an earlier segment's intermediate).
int ThroughViews(const Graph& g, int id, const std::set<int>& fed) {
  while (DefOf(g.node(id)).pattern == Pattern::kInjective && !fed.count(id)) {
    id = g.node(id).inputs[0];
  }
  return id;
}

bool IsGpuLoop(Halide::Internal::ForType t) {
  using Halide::Internal::ForType;
  return t == ForType::GPUBlock || t == ForType::GPUThread || t == ForType::GPULane;
}

const std::vector<Halide::Internal::Dim>& StageDims(const Halide::Internal::Function& f,
                                                    int stage) {
  return stage == 0 ? f.definition().schedule().dims() : f.updates()[stage - 1].schedule().dims();
}

// On a GPU target every stage that is not inlined must run on the device: at root as a kernel
// (block and thread loops), or inside another stage's GPU loops. A stage left on the host would
// run serially on the CPU and move its buffers across the bus every step. Internal error naming
// the Func (Funcs are named after their graph nodes) otherwise.
absl::Status CheckGpuPlacement(const std::vector<Halide::Func>& outputs) {
  // Every Func the outputs call, and the wrappers (Func::in) that replace calls at lowering.
  std::map<std::string, Halide::Internal::Function> env;
  std::vector<Halide::Internal::Function> work;
  for (const Halide::Func& f : outputs) work.push_back(f.function());
  while (!work.empty()) {
    Halide::Internal::Function fn = work.back();
    work.pop_back();
    if (!env.emplace(fn.name(), fn).second) continue;
    for (auto& [name, callee] : Halide::Internal::find_transitive_calls(fn)) work.push_back(callee);
    for (auto& [consumer, ptr] : fn.wrappers()) work.push_back(Halide::Internal::Function(ptr));
  }
  for (auto& [name, fn] : env) {
    Halide::LoopLevel level = fn.schedule().compute_level();
    level.lock();
    if (level.is_inlined()) continue;
    if (level.is_root()) {
      for (int s = 0; s <= static_cast<int>(fn.updates().size()); ++s) {
        const auto& dims = StageDims(fn, s);
        if (std::none_of(dims.begin(), dims.end(),
                         [](const Halide::Internal::Dim& d) { return IsGpuLoop(d.for_type); })) {
          return absl::InternalError(absl::StrCat("GPU schedule: stage ", s, " of '", name,
                                                  "' would run on the host (no GPU loops)"));
        }
      }
      continue;
    }
    auto it = env.find(level.func());
    bool inside_gpu = false;
    // compute_at(func, var) names the func's last stage (its stage index is not set yet): any
    // stage of it with a GPU loop at or around the var will do.
    for (int s = 0; it != env.end() && s <= static_cast<int>(it->second.updates().size()); ++s) {
      const std::string var = level.var().name();
      bool outside = false;  // dims run innermost first: the level's var, then what encloses it
      for (const auto& d : StageDims(it->second, s)) {
        if (Halide::Internal::ends_with(d.var, "." + var) || d.var == var) outside = true;
        if (outside && IsGpuLoop(d.for_type)) inside_gpu = true;
      }
    }
    if (!inside_gpu) {
      return absl::InternalError(absl::StrCat("GPU schedule: '", name, "' is computed at ",
                                              level.to_string(), ", outside any GPU loop"));
    }
  }
  return absl::OkStatus();
}

// CUDA's launch limits, checked on the lowered loop nest (a custom lowering pass: it runs after
// Halide has fused each kernel's thread loops, whose extents are then the launch's block
// dimensions): at most 1024 threads per block (x and y at most 1024, z at most 64), at most
// 65535 blocks along y and z, at most 48 KiB of shared memory where its size is constant. A
// launch beyond them fails on the device (CUDA_ERROR_INVALID_VALUE, for every step) and nowhere
// else; here it is a compile error naming the kernel.
class GpuLaunchCheck : public Halide::Internal::IRMutator {
 public:
  using IRMutator::mutate;
  Halide::Internal::Stmt mutate(const Halide::Internal::Stmt& s) override {
    s.accept(&finder_);
    if (!finder_.error.empty()) throw Halide::CompileError("GPU schedule: " + finder_.error);
    return s;
  }

 private:
  struct Finder : Halide::Internal::IRVisitor {
    using IRVisitor::visit;
    std::string error;
    std::string kernel;  // the outermost block loop of the kernel being walked
    int64_t threads[3] = {1, 1, 1}, shared = 0;

    static int Axis(const std::string& name, const std::string& kind) {
      for (int a = 0; a < 3; ++a) {
        if (Halide::Internal::ends_with(name, kind + "_" + "xyz"[a])) return a;
      }
      return -1;
    }
    void visit(const Halide::Internal::For* op) override {
      using Halide::Internal::ForType;
      const int64_t* extent = Halide::Internal::as_const_int(op->extent);
      if (op->for_type == ForType::GPUBlock) {
        const int a = Axis(op->name, "__block_id");
        if (a >= 1 && extent && *extent > 65535 && error.empty()) {
          error = absl::StrCat("kernel '", op->name, "' launches ", *extent, " blocks along ",
                               std::string(1, "xyz"[a]), " (at most 65535)");
        }
        if (kernel.empty()) {
          kernel = op->name;
          threads[0] = threads[1] = threads[2] = 1;
          shared = 0;
          IRVisitor::visit(op);
          const int64_t total = threads[0] * threads[1] * threads[2];
          if (error.empty() &&
              (total > 1024 || threads[0] > 1024 || threads[1] > 1024 || threads[2] > 64)) {
            error = absl::StrCat("kernel '", kernel, "' has blocks of ", threads[0], " x ",
                                 threads[1], " x ", threads[2], " = ", total,
                                 " threads (CUDA allows at most 1024)");
          }
          if (error.empty() && shared > 48 * 1024) {
            error = absl::StrCat("kernel '", kernel, "' uses ", shared,
                                 " bytes of shared memory (at most 49152)");
          }
          kernel.clear();
          return;
        }
      } else if (op->for_type == ForType::GPUThread && !kernel.empty()) {
        const int a = Axis(op->name, "__thread_id");
        if (a >= 0 && extent) threads[a] = std::max(threads[a], *extent);
      }
      IRVisitor::visit(op);
    }
    void visit(const Halide::Internal::Allocate* op) override {
      if (!kernel.empty() && op->memory_type == Halide::MemoryType::GPUShared) {
        int64_t bytes = op->type.bytes();
        for (const Halide::Expr& e : op->extents) {
          const int64_t* c = Halide::Internal::as_const_int(e);
          bytes = c ? bytes * *c : 0;
        }
        shared += bytes;
      }
      IRVisitor::visit(op);
    }
  };
  Finder finder_;
};

// Whether every row of every value the program computes reads the rows of one example only.
// Values computed from the examples keep them leading and whole: a leading axis of k x batch
// rows, k per example in order (k > 1 after a reshape such as [N, 16, 49] -> [16 N, 49], a
// vision transformer's patches), the same for the value and the inputs it reads rows of. Ops
// that work per row qualify (elementwise, convolution, pooling, a matmul whose right operand
// holds no example), and reductions, views, slices and joins along other axes; ops outside this
// list (custom ones included, unless elementwise) do not.
bool RowLocal(const Graph& g, const StepProgram& program, const std::vector<int>& order,
              int64_t batch) {
  std::set<int> rows;  // nodes whose value depends on the examples
  for (const auto& [id, spec] : program.inputs) {
    if (spec.role == ArgRole::kData) rows.insert(id);
  }
  auto whole = [&](const Shape& s) { return !s.empty() && s[0] > 0 && s[0] % batch == 0; };
  for (int id : order) {
    const Node& n = g.node(id);
    if (rows.count(id)) continue;
    std::vector<int> from;
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      if (rows.count(n.inputs[i])) from.push_back(static_cast<int>(i));
    }
    if (from.empty()) continue;
    if (!whole(n.shape)) return false;
    for (int i : from) {
      const Shape& s = g.node(n.inputs[i]).shape;
      if (!whole(s) || (n.op != OpKind::kReshape && s[0] != n.shape[0])) return false;
    }
    const OpDef& def = DefOf(n);
    bool ok = def.pattern == Pattern::kElementwise;
    switch (n.op) {
      case OpKind::kConv2D:
      case OpKind::kMaxPool2DArgmax:
      case OpKind::kMaxPool2DGather:
      case OpKind::kAvgPool2D:
      case OpKind::kReshape:
      case OpKind::kBroadcastTo:
      case OpKind::kRoundToInt:
      case OpKind::kOneHot:
      case OpKind::kToFloat:
      case OpKind::kClip:
        ok = true;
        break;
      case OpKind::kSum:
      case OpKind::kMax:
      case OpKind::kArgMax: {
        const auto& axes = n.attrs.Get<ReduceAttrs>().axes;
        ok = std::find(axes.begin(), axes.end(), 0) == axes.end();
        break;
      }
      case OpKind::kTranspose:
        ok = n.attrs.Get<TransposeAttrs>().perm[0] == 0;
        break;
      case OpKind::kSlice:
        ok = n.attrs.Get<SliceAttrs>().axis != 0;
        break;
      case OpKind::kConcat:
        ok = n.attrs.Get<ConcatAttrs>().axis != 0;
        break;
      case OpKind::kPad: {
        const PadAttrs& a = n.attrs.Get<PadAttrs>();
        ok = a.before[0] == 0 && a.after[0] == 0;
        break;
      }
      case OpKind::kMatMul:
        // [N, K] x [K, M]: row n of the product reads row n of the left operand. Batched
        // ([N, ..., M, K] x [N, ..., K, P]): product n reads operands n.
        ok = n.shape.size() > 2 || !rows.count(n.inputs[1]);
        break;
      default:
        break;
    }
    if (!ok) return false;
    rows.insert(id);
  }
  return true;
}

// Bytes of per-example intermediates a block of examples may fill: the largest intermediate of
// one block then fits a core's L2 (1 MB on Zen 4; 1-2 MB on current x86 server cores).
constexpr int64_t kBlockBytes = int64_t{1} << 20;
constexpr int64_t kMinBlocks = 8;

// Moves every Func computed at root into `block` of `out`, its parallel loops made serial (the
// blocks are the parallel loop).
void ComputeInBlocks(std::map<int, Lowered>& lowered, const Halide::Func& out,
                     const Halide::Var& block) {
  auto move = [&](Halide::Func f) {
    // Halide 14 answers is_root() only for a locked level; locking this handle's shared contents
    // is harmless, since compute_at below installs a new level rather than mutating this one.
    Halide::LoopLevel level = f.function().schedule().compute_level();
    if (!level.lock().is_root()) return;
    f.compute_at(out, block);
    auto serial = [](Halide::Internal::StageSchedule& s) {
      for (Halide::Internal::Dim& d : s.dims()) {
        if (d.for_type == Halide::Internal::ForType::Parallel) {
          d.for_type = Halide::Internal::ForType::Serial;
        }
      }
    };
    serial(f.function().definition().schedule());
    for (int i = 0; i < static_cast<int>(f.function().updates().size()); ++i) {
      serial(f.function().update(i).schedule());
    }
  };
  for (auto& [id, l] : lowered) {
    if (l.f.defined()) move(l.f);
    for (auto& [role, helper] : l.helpers) move(helper);
  }
}

// The step outputs that can compute a complex op's value in their own loop nest
// (OpDef::epilogue): output i -> that op's node. The output's value must reach the op only
// through inlined elementwise nodes of the output's shape, each read once (by the chain), and the
// op, of the same shape and read only there, must be the one such producer; the outputs an
// optimizer fuses with compute_with (a parameter and its state) keep their own loops.
std::map<size_t, int> EpilogueProducers(const Graph& g, const StepProgram& program,
                                        const std::set<int>& fed,
                                        const std::map<int, bool>& materialize,
                                        const std::map<int, int>& reads) {
  std::set<int> with_state;  // the parameters (input indices) whose update has optimizer state
  for (const auto& [id, spec] : program.outputs) {
    if (spec.role == ArgRole::kNewState) {
      with_state.insert(program.inputs[spec.updates].second.param);
    }
  }
  auto read_once = [&](int id) {
    auto it = reads.find(id);
    return it != reads.end() && it->second == 1;
  };
  std::map<size_t, int> out;
  for (size_t i = 0; i < program.outputs.size(); ++i) {
    const auto& [id, spec] = program.outputs[i];
    if (spec.role == ArgRole::kNewState || spec.shape.empty()) continue;
    if (spec.role == ArgRole::kNewParam && with_state.count(spec.updates)) continue;
    std::vector<int> producers;
    const bool ok = read_once(id);
    std::vector<int> stack = {id};
    while (ok && !stack.empty()) {
      const Node& n = g.node(stack.back());
      stack.pop_back();
      const OpDef& def = DefOf(n);
      if (fed.count(n.id) || n.shape != spec.shape || (n.id != id && !read_once(n.id))) {
        continue;  // read from a buffer, or broadcast: not part of the chain
      }
      if (def.pattern == Pattern::kElementwise && !materialize.count(n.id)) {
        for (int in : n.inputs) stack.push_back(in);
      } else if (def.pattern == Pattern::kComplex && def.epilogue != nullptr) {
        producers.push_back(n.id);
      }
    }
    if (ok && producers.size() == 1) out[i] = producers[0];
  }
  return out;
}

}  // namespace

std::vector<int> ProgramNodes(const Graph& g, const StepProgram& program) {
  std::set<int> inputs;
  for (const auto& [id, spec] : program.inputs) inputs.insert(id);
  std::set<int> seen;
  std::vector<int> stack;
  for (const auto& [id, spec] : program.outputs) stack.push_back(id);
  while (!stack.empty()) {
    const int id = stack.back();
    stack.pop_back();
    if (!seen.insert(id).second || inputs.count(id)) continue;
    for (int in : g.node(id).inputs) stack.push_back(in);
  }
  return std::vector<int>(seen.begin(), seen.end());  // ids ascend in topological order
}

int64_t ExampleBlock(const Graph& g, const StepProgram& program, const LowerCtx& ctx) {
  if (ctx.gpu() || program.outputs.size() != 1) return 0;
  const ArgSpec& out = program.outputs[0].second;
  if (out.role != ArgRole::kOutput || out.shape.empty()) return 0;
  for (const auto& [id, spec] : program.inputs) {
    if (spec.role != ArgRole::kData && spec.role != ArgRole::kParam &&
        spec.role != ArgRole::kState) {
      return 0;
    }
  }
  const int64_t batch = out.shape[0];
  const std::vector<int> order = ProgramNodes(g, program);
  if (!RowLocal(g, program, order, batch)) return 0;
  int64_t per_example = 1;  // bytes of the largest intermediate, per example
  for (int id : order) {
    const Node& n = g.node(id);
    if (DefOf(n).pattern == Pattern::kSource || n.shape.empty() || n.shape[0] % batch != 0) {
      continue;
    }
    per_example = std::max(per_example, NumElements(n.shape) / batch * ctx.float_type().bytes());
  }
  // The fewest blocks within kBlockBytes, evened out and rounded up to whole vectors of images.
  const int64_t lanes = ctx.BatchLanes(batch);
  const int64_t widest = std::max<int64_t>(lanes, kBlockBytes / per_example);
  // Under kMinBlocks blocks the whole batch nearly fits in cache already, and the blocks would
  // leave threads idle: the MLP's evaluation at batch 1000 (3 blocks of 336) ran at 0.78x.
  const int64_t blocks = (batch + widest - 1) / widest;
  if (blocks < kMinBlocks) return 0;
  return ((batch + blocks - 1) / blocks + lanes - 1) / lanes * lanes;
}

absl::StatusOr<LoweredStep> LowerStep(const Graph& g, const StepProgram& program, LowerCtx& ctx,
                                      bool plain, bool example_blocks) {
  try {
    LoweredStep out;
    std::map<int, Halide::Func> source_funcs;
    std::map<ArgKind, Halide::Func> by_kind;
    std::vector<std::pair<Halide::Func, Halide::ImageParam>> gathers;  // resident data sets
    for (const auto& [id, spec] : program.inputs) {
      const Node& n = g.node(id);
      Halide::Func f("src_" + Sanitize(spec.name));
      LoweredInput in;
      if (spec.role == ArgRole::kDataset && spec.kind != ArgKind::kOrder) {
        // The whole data set; the node's value (a batch) is gathered below.
        Halide::ImageParam p(ctx.TypeOf(n.dtype), static_cast<int>(spec.shape.size()),
                             "in_" + Sanitize(spec.name));
        ConstrainDense(p, spec.shape);
        gathers.emplace_back(f, p);
        in.buffer = p;
      } else if (PassedByValue(spec)) {
        Halide::Param<> p(ctx.TypeOf(n.dtype), "in_" + Sanitize(spec.name));
        f() = Halide::Expr(p);
        in.scalar = p;
      } else {
        Halide::ImageParam p(ctx.TypeOf(n.dtype), static_cast<int>(spec.shape.size()),
                             "in_" + Sanitize(spec.name));
        ConstrainDense(p, spec.shape);
        std::vector<Halide::Var> v = ctx.Vars(static_cast<int>(n.shape.size()));
        if (program.batch_inner_args.count(id)) {
          ctx.Define(f, v, ctx.At(p, BatchLast(v)));
        } else {
          ctx.Define(f, v, ctx.At(p, v));
        }
        in.buffer = p;
      }
      source_funcs[id] = f;
      if (spec.kind != ArgKind::kNone) by_kind.emplace(spec.kind, f);
      out.inputs.push_back(in);
      if (spec.kind == ArgKind::kStep) ctx.set_step(f);
      if (spec.kind == ArgKind::kExampleOffset) ctx.set_example_offset(f);
    }
    if (!gathers.empty()) {
      // batch row b = data set row order[batch_start + b]; both indices clamped into range so
      // bounds inference asks for no more than the constrained buffers hold.
      if (!by_kind.count(ArgKind::kOrder) || !by_kind.count(ArgKind::kBatchStart)) {
        return absl::InvalidArgumentError(
            "a resident step needs an order input and a batch-start hyperparameter");
      }
      Halide::Func order = by_kind[ArgKind::kOrder], start = by_kind[ArgKind::kBatchStart];
      for (auto& [f, p] : gathers) {
        const int rank = p.dimensions();
        const Halide::Expr n = p.dim(rank - 1).extent();
        std::vector<Halide::Var> v = ctx.Vars(rank);
        std::vector<Halide::Expr> idx(v.begin(), v.end());
        idx[0] = Halide::clamp(order(Halide::clamp(start() + v[0], 0, n - 1)), 0, n - 1);
        ctx.Define(f, v, ctx.At(p, idx));
      }
    }
    ctx.set_graph(&g);
    ctx.set_source_fn([&](const Node& n) -> Halide::Func {
      auto it = source_funcs.find(n.id);
      if (it == source_funcs.end()) {
        throw Halide::CompileError(absl::StrCat("node '", n.name, "' (", DefOf(n).name,
                                                ") is needed but is not an argument of the step"));
      }
      return it->second;
    });

    std::vector<int> roots;
    for (const auto& [id, spec] : program.outputs) roots.push_back(id);
    std::vector<int> order = ProgramNodes(g, program);
    // Nodes other than sources fed to the step as arguments (a segment's intermediates): read
    // from their buffers, never computed here.
    std::set<int> fed;
    for (const auto& [id, spec] : program.inputs) {
      if (DefOf(g.node(id)).pattern != Pattern::kSource) fed.insert(id);
    }
    std::map<int, Lowered> lowered;
    ctx.set_helper_fn([&](int id, std::string_view role) -> Halide::Func* {
      auto it = lowered.find(id);
      return it == lowered.end() || fed.count(id) ? nullptr : it->second.helpers.Find(role);
    });
    const std::set<int> strict(program.strict.begin(), program.strict.end());
    for (int id : order) {
      const Node& n = g.node(id);
      if (fed.count(id)) {
        lowered[id] = Lowered{source_funcs.at(id), {}, {}};
        continue;
      }
      std::vector<Halide::Func> in;
      for (int i : n.inputs) in.push_back(lowered.at(i).f);
      Lowered l = DefOf(n).lower(ctx, n, in);
      // The optimizer's arithmetic, strict (StepProgram::strict): each elementwise node's value
      // wrapped in strict_float, so LLVM fuses and reorders nothing in it whatever the code
      // around it. With fast math the same update rounded differently in one pipeline and in a
      // two-phase update (Adam on the MLP: 2.4e-6 of a tensor's scale after 100 steps,
      // 2026-12-02); the gradients, matmuls and convolutions stay fast.
      const Pattern pat = DefOf(n).pattern;
      if (strict.count(id) && (pat == Pattern::kElementwise || pat == Pattern::kInjective) &&
          l.f.defined() && !l.f.has_update_definition() && l.f.outputs() == 1) {
        Halide::Func s(l.f.name() + "_strict");
        s(l.f.args()) = Halide::strict_float(l.f.value());
        l.f = s;
      }
      lowered[id] = std::move(l);
    }

    // Inputs of complex ops (matmul) are read many times: materialize an elementwise producer
    // behind views instead of recomputing it inside the reduction loop.
    std::map<int, bool> materialize;
    for (int id : order) {
      const Node& n = g.node(id);
      if (DefOf(n).pattern != Pattern::kComplex || fed.count(id)) continue;
      for (size_t i = 0; i < n.inputs.size(); ++i) {
        int p = ThroughViews(g, n.inputs[i], fed);
        if (fed.count(p)) continue;
        // Read once, and through no view that repeats elements (a broadcast): inlined.
        bool repeats = false;
        for (int v = n.inputs[i]; v != p; v = g.node(v).inputs[0]) {
          repeats |= g.node(v).op == OpKind::kBroadcastTo;
        }
        if (!repeats && DefOf(n).reads != nullptr && DefOf(n).reads(n, static_cast<int>(i)) <= 1) {
          continue;
        }
        if (DefOf(g.node(p)).pattern == Pattern::kElementwise &&
            g.node(p).op != OpKind::kConstant) {
          materialize[p] = true;
        }
      }
    }
    // A two-phase step's update scales each gradient it reads (grad_scale): computed once into a
    // buffer of its own, the update then reads its gradient from memory as the one-pipeline step
    // reads a gradient a reduction or matmul produced. Inlined, the extra multiply changes how
    // Halide simplifies the update's expressions, even with strict arithmetic: the batch-norm CNN
    // with Nesterov momentum, clipping and decay drifted to 0.27 of a tensor's scale after 100
    // steps against one pipeline; stored, the two forms give the same bits (2026-12-02).
    std::set<int> gradient_inputs;
    for (const auto& [id, spec] : program.inputs) {
      if (spec.role == ArgRole::kGradient) gradient_inputs.insert(id);
    }
    for (int id : order) {
      const Node& n = g.node(id);
      if (DefOf(n).pattern != Pattern::kElementwise) continue;
      for (int in : n.inputs) {
        if (gradient_inputs.count(in)) materialize[id] = true;
      }
    }
    // Expression growth. An elementwise or view node is inlined into every consumer, so a node
    // read k times appears k times in the expressions that read it, and a chain of such nodes
    // each read several times grows exponentially with its length: the residual stream of a
    // transformer and its gradient, which every layer norm's backward reads three times, took
    // 11 minutes to compile for 4 blocks (2026-12-02). A node read more than once whose inlined
    // expression holds more than kMaxInlineNodes nodes is computed once into a buffer of its own.
    // (The tutorial's models stay far below: their schedules are unchanged.)
    constexpr int64_t kMaxInlineNodes = 24;
    std::map<int, int> reads;
    for (int id : order) {
      for (int in : g.node(id).inputs) ++reads[in];
    }
    for (const auto& [id, spec] : program.outputs) ++reads[id];
    std::map<int, int64_t> inline_nodes;
    for (int id : order) {
      const Node& n = g.node(id);
      const Pattern pat = DefOf(n).pattern;
      const bool inlinable =
          (pat == Pattern::kElementwise || pat == Pattern::kInjective) && !fed.count(id);
      int64_t size = 1;
      if (inlinable) {
        for (int in : n.inputs) size += inline_nodes.count(in) ? inline_nodes[in] : 1;
      }
      if (!inlinable || materialize.count(id) || (n.shape.empty() && n.op != OpKind::kConstant)) {
        continue;  // read from memory by its consumers (size 1)
      }
      if (reads[id] > 1 && size > kMaxInlineNodes) {
        if (pat == Pattern::kElementwise) {
          materialize[id] = true;
          continue;
        }
        // A view (a transpose a matmul reads in place, a broadcast that repeats elements) stays
        // a view: the elementwise producer behind it is stored instead.
        const int p = ThroughViews(g, id, fed);
        if (!fed.count(p) && DefOf(g.node(p)).pattern == Pattern::kElementwise &&
            g.node(p).op != OpKind::kConstant) {
          materialize[p] = true;
          inline_nodes.erase(p);
          size = 1;
          for (int v = id; v != p; v = g.node(v).inputs[0]) ++size;
        }
      }
      inline_nodes[id] = size;
    }
    const int64_t block = example_blocks && !plain ? ExampleBlock(g, program, ctx) : 0;
    // Outputs that compute a complex op's value tile by tile (OpDef::epilogue): output i -> node.
    std::map<size_t, int> epilogue;
    if (!plain && !ctx.gpu() && block == 0) {
      epilogue = EpilogueProducers(g, program, fed, materialize, reads);
    }
    std::set<int> in_epilogue;
    for (const auto& [i, id] : epilogue) in_epilogue.insert(id);
    for (int id : order) {
      if (fed.count(id) || in_epilogue.count(id)) continue;
      const Node& n = g.node(id);
      const OpDef& def = DefOf(n);
      Lowered& l = lowered[id];
      if (plain) {
        if (def.pattern != Pattern::kSource) l.f.compute_root();
        for (auto& [role, helper] : l.helpers) helper.compute_root();
        continue;
      }
      const Layout layout = ctx.layout(n);
      switch (def.pattern) {
        case Pattern::kSource:
          break;
        case Pattern::kElementwise:
        case Pattern::kInjective:
          // Scalars (learning rate times a bias correction, a clipping scale, a mean) are
          // computed once per step, not again for every element that reads them.
          if (materialize.count(id) || (n.shape.empty() && n.op != OpKind::kConstant)) {
            ctx.ScheduleMaterialized(l.f, n.shape, 1, layout);
          }
          break;
        case Pattern::kReduction:
        case Pattern::kComplex:
          if (def.schedule != nullptr) {
            def.schedule(ctx, n, l);
            // The node's value in its planned layout, where it is stored at all (a hook that
            // stores it otherwise, or inlines it, decides; storage of an inlined Func is moot).
            ctx.StoreAs(l.f, static_cast<int>(n.shape.size()), layout);
          } else {
            int64_t in_elems = NumElements(ctx.input_shape(n, 0));
            ctx.ScheduleMaterialized(l.f, n.shape,
                                     in_elems / std::max<int64_t>(1, NumElements(n.shape)), layout);
          }
          break;
      }
    }

    for (size_t i = 0; i < program.outputs.size(); ++i) {
      const auto& [id, spec] = program.outputs[i];
      Halide::Func f("out_" + Sanitize(spec.name) + "_" + ArgRoleName(spec.role));
      std::vector<Halide::Var> v = ctx.Vars(static_cast<int>(spec.shape.size()));
      if (program.batch_inner_args.count(id)) {
        // [C, H, W, N] <- (n, c, y, x): a copy along the batch, as the value is stored.
        ctx.Define(f, v,
                   ctx.At(lowered.at(id).f, std::vector<Halide::Expr>{v[3], v[0], v[1], v[2]}));
      } else {
        ctx.Define(f, v, ctx.At(lowered.at(id).f, v));
      }
      if (block > 0) {
        Halide::Var bo("bo"), bi("bi");
        f.compute_root()
            .split(v[0], bo, bi, static_cast<int>(block), Halide::TailStrategy::ShiftInwards)
            .parallel(bo);
        ComputeInBlocks(lowered, f, bo);
      } else if (auto it = epilogue.find(i); it != epilogue.end()) {
        const Node& p = g.node(it->second);
        Lowered& l = lowered.at(p.id);
        if (!DefOf(p).epilogue(ctx, p, l, f)) {
          DefOf(p).schedule(ctx, p, l);
          ctx.ScheduleMaterialized(f, spec.shape, 1);
        }
      } else if (!plain) {
        ctx.ScheduleMaterialized(f, spec.shape, 1);
      }
      ConstrainDense(f.output_buffer(), spec.shape);
      out.outputs.push_back(f);
    }
    // A parameter's update and its optimizer state (Adam's m and v) read the same gradient,
    // parameter and state: one fused loop instead of three passes over memory that no longer
    // fits in cache (MLP 784-128-64-10, Adam, batch 64, 2026-11-28, 2-core Zen 4: the step went
    // from 760 to 542 us).
    // Not on a GPU: Halide 14's GPU loop fusion fails on it (FuseGPUThreadLoops.cpp:52,
    // "block_count defined", tried 2026-11-28): there the three outputs stay three kernels.
    if (!plain && !ctx.gpu()) {
      for (size_t i = 0; i < program.outputs.size(); ++i) {
        const ArgSpec& state = program.outputs[i].second;
        if (state.role != ArgRole::kNewState || state.shape.size() < 2) continue;
        const int param = program.inputs[state.updates].second.param;  // the slot's parameter
        for (size_t j = 0; param >= 0 && j < program.outputs.size(); ++j) {
          const ArgSpec& update = program.outputs[j].second;
          if (update.role == ArgRole::kNewParam && update.updates == param) {
            out.outputs[i].compute_with(out.outputs[j],
                                        ctx.Vars(static_cast<int>(state.shape.size())).front());
            break;
          }
        }
      }
    }
    if (ctx.gpu() && !plain) {
      if (absl::Status st = CheckGpuPlacement(out.outputs); !st.ok()) return st;
    }
    out.pipeline = Halide::Pipeline(out.outputs);
    if (ctx.gpu()) out.pipeline.add_custom_lowering_pass(new GpuLaunchCheck);
    return out;
  } catch (const Halide::Error& e) {
    return absl::InternalError(absl::StrCat("lowering to Halide failed: ", e.what()));
  }
}

}  // namespace kiln
