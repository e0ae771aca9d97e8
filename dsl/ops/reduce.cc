// Reductions over axes: sum, max, argmax. Materialized (compute_root) with the default schedule of
// LowerCtx::ScheduleMaterialized: vectorized over the innermost kept axis, parallel over the
// outermost when the work is worth a thread wake-up. Attributes: ReduceAttrs.
#include <algorithm>

#include "dsl/ops/common.h"

namespace kiln {
namespace {

using Halide::Expr;
using Halide::Func;
using Halide::Var;

absl::StatusOr<TypeAndShape> InferReduce(const std::vector<const Node*>& in, const Attrs& at) {
  if (in[0]->dtype == DType::kUInt8) {
    return absl::InvalidArgumentError("expected a float or int32 input, got uint8");
  }
  KILN_ASSIGN_OR_RETURN(const ReduceAttrs* a, ops::AttrsAs<ReduceAttrs>(at));
  KILN_ASSIGN_OR_RETURN(Shape s, ops::ReducedShape(in[0]->shape, a->axes, a->keepdims));
  return TypeAndShape{in[0]->dtype, s};
}

// A large sum over the batch axis and the innermost axis into a small result (the bias gradient
// of a convolution: [N, C, H, W] -> [C]) in two fixed stages, deterministic for any thread count:
// part(b, kept..., lane) sums a chunk b of the batch and the middle reduced axes with the innermost
// axis as vector lanes (contiguous loads, independent accumulators); the result sums part over
// (b, lane). One stage instead put the loop over C outermost and vectorized it: gathers with
// stride H*W, single-threaded; 0.66 ms of the tutorial CNN's step (2026-11-28, batch 64).
bool ChunkedSum(const Shape& is, const std::vector<int64_t>& axes) {
  const int64_t rank = static_cast<int64_t>(is.size());
  return rank >= 2 && axes.front() == 0 && axes.back() == rank - 1 && is[0] >= 4 &&
         NumElements(is) >= (1 << 16);
}

// The batch rows each partial sum of a chunked sum covers.
int SumChunk(const Shape& is) { return ops::Divisor(is[0], std::max<int64_t>(1, is[0] / 8)); }

bool Reduced(const ReduceAttrs& a, int axis) {
  return std::find(a.axes.begin(), a.axes.end(), axis) != a.axes.end();
}

// Logical shape of a chunked sum's partial sums: (chunk, the kept axes in order, the innermost
// axis as lanes).
Shape PartShape(const Shape& is, const ReduceAttrs& a) {
  Shape part = {is[0] / SumChunk(is)};
  for (int axis = 1; axis + 1 < static_cast<int>(is.size()); ++axis) {
    if (!Reduced(a, axis)) part.push_back(is[axis]);
  }
  part.push_back(is.back());
  return part;
}

Lowered LowerChunkedSum(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  const ReduceAttrs& a = n.attrs.Get<ReduceAttrs>();
  const Shape& is = ctx.input_shape(n, 0);
  const int rank = static_cast<int>(is.size());
  const int chunk = SumChunk(is);
  const Shape part_shape = PartShape(is, a);
  std::vector<Var> pv = ctx.Vars(static_cast<int>(part_shape.size()));
  // Each partial sum runs over the rows of its chunk and the middle reduced axes.
  Shape extents = {chunk};
  for (int axis = 1; axis + 1 < rank; ++axis) {
    if (Reduced(a, axis)) extents.push_back(is[axis]);
  }
  std::vector<Halide::RVar> r = ctx.RVars(ctx.ReductionDomain(extents, "r"));
  std::vector<Expr> idx = {pv[0] * chunk + r[0]};
  for (int axis = 1, kept = 1, reduced = 1; axis + 1 < rank; ++axis) {
    idx.push_back(Reduced(a, axis) ? Expr(r[reduced++]) : Expr(pv[kept++]));
  }
  idx.push_back(pv.back());
  Halide::Type t = ctx.TypeOf(n.dtype);
  Func part = ctx.NewFunc(n, "part");
  ctx.Define(part, pv, Halide::cast(t, 0));
  ctx.Ref(part, pv) += ctx.At(in[0], idx);
  // The result sums part over (chunk, lane); keepdims axes of size 1 read nothing, kept axes map
  // to part's.
  std::vector<Var> v = ctx.Vars(static_cast<int>(n.shape.size()));
  std::vector<Halide::RVar> rb =
      ctx.RVars(ctx.ReductionDomain({part_shape.front(), part_shape.back()}, "rb"));
  std::vector<Expr> pidx = {rb[0]};
  for (int axis = 0, out = 0; axis < rank; ++axis) {
    if (!Reduced(a, axis)) pidx.push_back(v[out]);
    if (!Reduced(a, axis) || a.keepdims) ++out;
  }
  pidx.push_back(rb[1]);
  Func f = ctx.NewFunc(n);
  ctx.Define(f, v, Halide::cast(t, 0));
  ctx.Ref(f, v) += ctx.At(part, pidx);
  return {f, {{"part", part}}};
}

// The sum's result from partial sums kept as vector lanes: f(v) adds part(pidx..., lane) over the
// lanes in a fixed tree (ops::LaneTreeSum).
Func SumOfLanes(LowerCtx& ctx, const Node& n, Func part, const std::vector<Expr>& pidx, int lanes) {
  Func f = ctx.NewFunc(n);
  ctx.Define(f, ctx.Vars(static_cast<int>(n.shape.size())), ops::LaneTreeSum(lanes, [&](int k) {
               std::vector<Expr> at = pidx;
               at.push_back(k);
               return ctx.At(part, at);
             }));
  return f;
}

// A sum over the batch axis (among others) of a batch-inner input (compiler/layout.h: a
// convolution's bias gradient, [N, C, H, W] -> [C]): the vector lanes are images.
// part(kept..., lane) sums, for image lane of every block of `lanes` images, over the blocks and
// the other reduced axes, the blocks innermost (contiguous vector loads); the result sums part over
// its lanes in a fixed tree (ops::LaneTreeSum). Fixed order, the same for any thread count.
bool BatchLaneSum(const LowerCtx& ctx, const Node& n) {
  return !ctx.gpu() && ctx.input_layout(n, 0) == Layout::kBatchInner &&
         n.attrs.Get<ReduceAttrs>().axes.front() == 0;
}

// Logical shape of a batch-lane sum's partial sums: (the kept axes in order, lanes).
Shape LaneShape(const LowerCtx& ctx, const Shape& is, const ReduceAttrs& a) {
  Shape part;
  for (int axis = 1; axis < static_cast<int>(is.size()); ++axis) {
    if (!Reduced(a, axis)) part.push_back(is[axis]);
  }
  part.push_back(ctx.BatchLanes(is[0]));
  return part;
}

Lowered LowerBatchLaneSum(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  const ReduceAttrs& a = n.attrs.Get<ReduceAttrs>();
  const Shape& is = ctx.input_shape(n, 0);
  const int rank = static_cast<int>(is.size());
  const Shape part_shape = LaneShape(ctx, is, a);
  const int lanes = static_cast<int>(part_shape.back());
  std::vector<Var> pv = ctx.Vars(static_cast<int>(part_shape.size()));
  Shape extents;  // the reduced axes after the batch, then the image blocks (innermost)
  for (int axis = 1; axis < rank; ++axis) {
    if (Reduced(a, axis)) extents.push_back(is[axis]);
  }
  extents.push_back(is[0] / lanes);
  std::vector<Halide::RVar> r = ctx.RVars(ctx.ReductionDomain(extents, "r"));
  std::vector<Expr> idx = {r.back() * lanes + pv.back()};
  for (int axis = 1, kept = 0, reduced = 0; axis < rank; ++axis) {
    idx.push_back(Reduced(a, axis) ? Expr(r[reduced++]) : Expr(pv[kept++]));
  }
  Halide::Type t = ctx.TypeOf(n.dtype);
  Func part = ctx.NewFunc(n, "part");
  ctx.Define(part, pv, Halide::cast(t, 0));
  ctx.Ref(part, pv) += ctx.At(in[0], idx);
  std::vector<Var> v = ctx.Vars(static_cast<int>(n.shape.size()));
  std::vector<Expr> pidx;
  for (int axis = 0, out = 0; axis < rank; ++axis) {
    if (!Reduced(a, axis)) pidx.push_back(v[out]);
    if (!Reduced(a, axis) || a.keepdims) ++out;
  }
  return {SumOfLanes(ctx, n, part, pidx, lanes), {{"lanes", part}}};
}

// A float sum over the innermost axis only, of a row-major input whose rows fill vectors (a
// layer norm's statistics and their gradients: [rows, 64] -> [rows, 1]). part(kept..., lane) sums
// the row's blocks of `lanes` with the lanes as a vector (contiguous loads, one accumulator); the
// result sums part's lanes in a fixed tree (ops::LaneTreeSum). The default schedule ran each row
// as one dependent chain of scalar additions: the layer-norm probe spent most of its step in
// four such sums.
bool RowSum(const LowerCtx& ctx, const Node& n) {
  const Shape& is = ctx.input_shape(n, 0);
  const std::vector<int64_t>& axes = n.attrs.Get<ReduceAttrs>().axes;
  const int64_t lanes = ctx.vector_width();
  return !ctx.gpu() && n.dtype == DType::kFloat && is.size() >= 2 &&
         ctx.input_layout(n, 0) == Layout::kRowMajor && axes.size() == 1 &&
         axes.front() == static_cast<int64_t>(is.size()) - 1 && lanes > 1 && is.back() % lanes == 0;
}

Lowered LowerRowSum(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  const Shape& is = ctx.input_shape(n, 0);
  const int rank = static_cast<int>(is.size());
  const int lanes = ctx.vector_width();
  std::vector<Var> pv = ctx.Vars(rank);  // the kept axes, then the lane
  Halide::RDom r = ctx.ReductionDomain({is.back() / lanes}, "r");
  std::vector<Expr> idx(pv.begin(), pv.end() - 1);
  idx.push_back(ctx.RVars(r)[0] * lanes + pv.back());
  Halide::Type t = ctx.TypeOf(n.dtype);
  Func part = ctx.NewFunc(n, "part");
  ctx.Define(part, pv, Halide::cast(t, 0));
  ctx.Ref(part, pv) += ctx.At(in[0], idx);
  std::vector<Var> v = ctx.Vars(static_cast<int>(n.shape.size()));
  std::vector<Expr> pidx(v.begin(), v.begin() + (rank - 1));  // keepdims: v.back() reads nothing
  return {SumOfLanes(ctx, n, part, pidx, lanes), {{"row_part", part}}};
}

void ScheduleSum(LowerCtx& ctx, const Node& n, Lowered& l) {
  const Shape& is = ctx.input_shape(n, 0);
  if (Func* part = l.helpers.Find("row_part")) {
    // Rows in tasks of at least 2^15 elements when there is that much work, each row's partial
    // sums (one vector) computed where the row is summed.
    const int rank = static_cast<int>(is.size());
    std::vector<Var> v = ctx.Vars(static_cast<int>(n.shape.size()));
    std::vector<Var> pv = ctx.Vars(rank);
    l.f.compute_root();
    Var at = v[rank - 2];
    const int64_t group = LowerCtx::RowsPerTask(is[0], NumElements(is));
    if (group > 0) {
      if (group > 1) {
        Var inner;
        l.f.split(v[0], v[0], inner, static_cast<int>(group), Halide::TailStrategy::GuardWithIf);
        if (rank == 2) at = inner;
      }
      l.f.parallel(v[0]);
    }
    part->compute_at(l.f, at).vectorize(pv.back());
    part->update().vectorize(pv.back());
    return;
  }
  if (Func* lanes = l.helpers.Find("lanes")) {  // a batch-lane sum (CPU only)
    const Shape part_shape = LaneShape(ctx, is, n.attrs.Get<ReduceAttrs>());
    std::vector<Var> pv = ctx.Vars(static_cast<int>(part_shape.size()));
    const int width = static_cast<int>(part_shape.back());
    lanes->compute_root().vectorize(pv.back(), width);
    lanes->update().vectorize(pv.back(), width);
    if (part_shape.size() >= 2 && part_shape.front() >= 2 && NumElements(is) >= (1 << 16)) {
      lanes->parallel(pv.front());
      lanes->update().parallel(pv.front());
    }
    l.f.compute_root();
    return;
  }
  Func* part = l.helpers.Find("part");
  if (part == nullptr) {  // not a chunked sum: the default schedule of a reduction
    ctx.ScheduleMaterialized(l.f, n.shape,
                             NumElements(is) / std::max<int64_t>(1, NumElements(n.shape)));
    return;
  }
  const Shape part_shape = PartShape(is, n.attrs.Get<ReduceAttrs>());
  if (ctx.gpu()) {
    // Partial sums per (chunk, kept axes, innermost index) in one kernel, their sum in a second.
    ctx.GpuTileAll(*part, part_shape);
    ctx.GpuTileAll(l.f, n.shape);
    return;
  }
  std::vector<Var> pv = ctx.Vars(static_cast<int>(part_shape.size()));
  const int lanes = ops::Divisor(is.back(), ctx.vector_width());
  part->compute_root().parallel(pv[0]).vectorize(pv.back(), lanes);
  part->update().parallel(pv[0]).vectorize(pv.back(), lanes);
  l.f.compute_root();
}

// sum(x)(out) = sum over the reduced axes of x
Lowered LowerSum(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  const ReduceAttrs& a = n.attrs.Get<ReduceAttrs>();
  const Shape& is = ctx.input_shape(n, 0);
  if (BatchLaneSum(ctx, n)) return LowerBatchLaneSum(ctx, n, in);
  if (ChunkedSum(is, a.axes)) return LowerChunkedSum(ctx, n, in);
  if (RowSum(ctx, n)) return LowerRowSum(ctx, n, in);
  std::vector<Var> v = ctx.Vars(static_cast<int>(n.shape.size()));
  Halide::RDom r = ops::ReductionDomain(ctx, is, a.axes, "r");
  Func f = ctx.NewFunc(n);
  Halide::Type t = ctx.TypeOf(n.dtype);
  ctx.Define(f, v, Halide::cast(t, 0));
  ctx.Ref(f, v) += ctx.At(in[0], ops::ReductionIndex(is, a, v, ctx.RVars(r)));
  return {f};
}

// The input's shape with the reduced axes of size 1.
Shape KeepDimsShape(const VjpArgs& a) {
  Shape keep = a.x[0].shape();
  for (int64_t axis : a.attrs.Get<ReduceAttrs>().axes) keep[axis] = 1;
  return keep;
}

// Gradient of a sum: dy broadcast back over the reduced axes.
// dx = broadcast_to(reshape(dy, keepdims shape), x.shape)
std::vector<Value> SumVjp(const VjpArgs& a) {
  Shape keep = KeepDimsShape(a);
  return {BroadcastTo(Reshape(a.dy, keep), a.x[0].shape())};
}

Lowered LowerMax(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  const ReduceAttrs& a = n.attrs.Get<ReduceAttrs>();
  const Shape& is = ctx.input_shape(n, 0);
  std::vector<Var> v = ctx.Vars(static_cast<int>(n.shape.size()));
  Halide::RDom r = ops::ReductionDomain(ctx, is, a.axes, "r");
  Func f = ctx.NewFunc(n);
  Halide::Type t = ctx.TypeOf(n.dtype);
  ctx.Define(f, v, t.min());
  ctx.Ref(f, v) =
      Halide::max(ctx.At(f, v), ctx.At(in[0], ops::ReductionIndex(is, a, v, ctx.RVars(r))));
  return {f};
}

// Gradient of a max: dy flows to the elements equal to the max (to every one of them on a tie).
// dx = dy * (x == y), both broadcast to x.shape
std::vector<Value> MaxVjp(const VjpArgs& a) {
  Shape keep = KeepDimsShape(a);
  Value mask = Equal(a.x[0], Reshape(a.y, keep));
  return {mask * Reshape(a.dy, keep)};
}

absl::StatusOr<TypeAndShape> InferArgMax(const std::vector<const Node*>& in, const Attrs& at) {
  KILN_ASSIGN_OR_RETURN(TypeAndShape ts, InferReduce(in, at));
  if (at.Get<ReduceAttrs>().axes.size() != 1) {
    return absl::InvalidArgumentError("expected exactly one axis");
  }
  return TypeAndShape{DType::kInt32, ts.shape};
}

// argmax: the first index of the largest value along the axis.
Lowered LowerArgMax(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  const ReduceAttrs& a = n.attrs.Get<ReduceAttrs>();
  const Shape& is = ctx.input_shape(n, 0);
  std::vector<Var> v = ctx.Vars(static_cast<int>(n.shape.size()));
  std::vector<Halide::RVar> r = ctx.RVars(ops::ReductionDomain(ctx, is, a.axes, "r"));
  Func best = ctx.NewFunc(n, "best");
  Halide::Type t = ctx.TypeOf(ctx.input_dtype(n, 0));
  ctx.Ref(best, v) = Halide::Tuple(t.min(), 0);
  Expr x = ctx.At(in[0], ops::ReductionIndex(is, a, v, r));
  Expr better = x > ctx.Ref(best, v)[0];
  ctx.Ref(best, v) =
      Halide::Tuple(Halide::select(better, x, ctx.Ref(best, v)[0]),
                    Halide::select(better, Halide::cast<int32_t>(r[0]), ctx.Ref(best, v)[1]));
  Func f = ctx.NewFunc(n);
  ctx.Define(f, v, ctx.Ref(best, v)[1]);
  return {f, {{"best", best}}};
}

void ScheduleArgMax(LowerCtx& ctx, const Node& n, Lowered& l) {
  const int64_t axis = n.attrs.Get<ReduceAttrs>().axes[0];
  ctx.ScheduleMaterialized(l.helpers.Get("best"), n.shape, ctx.input_shape(n, 0)[axis]);
}

}  // namespace

extern const OpDef kSumOp = {"sum",    Pattern::kReduction, 1, InferReduce, SumVjp,
                             LowerSum, ScheduleSum};
extern const OpDef kMaxOp = {"max", Pattern::kReduction, 1, InferReduce, MaxVjp, LowerMax, nullptr};
extern const OpDef kArgMaxOp = {"argmax",    Pattern::kReduction, 1, InferArgMax, nullptr,
                                LowerArgMax, ScheduleArgMax};

}  // namespace kiln
