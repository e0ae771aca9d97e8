// Reductions over axes: sum, max, argmax. Materialized (compute_root) with the default schedule of
// LowerCtx::ScheduleMaterialized: vectorized over the innermost kept axis, parallel over the
// outermost when the work is worth a thread wake-up. Attrs: ints = sorted axes, flag = keepdims.
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
  absl::StatusOr<Shape> s = ops::ReducedShape(in[0]->shape, at.ints, at.flag);
  if (!s.ok()) return s.status();
  return TypeAndShape{in[0]->dtype, *s};
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

Lowered LowerChunkedSum(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  const Shape& is = ctx.input_shape(n, 0);
  const int rank = static_cast<int>(is.size());
  const std::vector<int64_t>& axes = n.attrs.ints;
  auto reduced = [&](int a) { return std::find(axes.begin(), axes.end(), a) != axes.end(); };
  const int chunk = SumChunk(is);
  const int chunks = static_cast<int>(is[0] / chunk);
  // part's logical axes: b, the kept axes in order, the innermost axis as lanes.
  int kept = 0;
  for (int a = 0; a < rank; ++a) kept += !reduced(a);
  std::vector<Var> pv = ctx.Vars(kept + 2);
  std::vector<Halide::Range> ranges;  // innermost first: the middle reduced axes, then the chunk
  for (int a = rank - 2; a >= 1; --a) {
    if (reduced(a)) ranges.emplace_back(0, static_cast<int>(is[a]));
  }
  ranges.emplace_back(0, chunk);
  Halide::RDom r(ranges, "r");
  std::vector<Expr> idx(rank);
  int next_kept = 1, next_r = static_cast<int>(ranges.size()) - 2;
  for (int a = 0; a < rank; ++a) {
    if (a == 0) {
      idx[a] = pv[0] * chunk + r[static_cast<int>(ranges.size()) - 1];
    } else if (a == rank - 1) {
      idx[a] = pv[kept + 1];
    } else if (reduced(a)) {
      idx[a] = r[next_r--];
    } else {
      idx[a] = pv[next_kept++];
    }
  }
  Halide::Type t = ctx.TypeOf(n.dtype);
  Func part = ctx.NewFunc(n, "part");
  ctx.Define(part, pv, Halide::cast(t, 0));
  std::vector<Var> hpv(pv.rbegin(), pv.rend());
  part(hpv) += ctx.At(in[0], idx);
  // The result: keepdims axes of size 1 read nothing; kept axes map to part's.
  std::vector<Var> v = ctx.Vars(static_cast<int>(n.shape.size()));
  Halide::RDom rb({{0, static_cast<int>(is[rank - 1])}, {0, chunks}}, "rb");  // lane, b
  std::vector<Expr> pidx = {rb.y};
  for (int a = 0, out = 0; a < rank; ++a) {
    if (!reduced(a)) pidx.push_back(v[out]);
    if (!reduced(a) || n.attrs.flag) ++out;
  }
  pidx.push_back(rb.x);
  Func f = ctx.NewFunc(n);
  ctx.Define(f, v, Halide::cast(t, 0));
  std::vector<Var> hv(v.rbegin(), v.rend());
  f(hv) += ctx.At(part, pidx);
  return {f, {part}, {r, rb}};
}

void ScheduleSum(LowerCtx& ctx, const Node& n, Lowered& l) {
  if (l.aux.empty()) {  // the default schedule of a reduction
    ctx.ScheduleMaterialized(
        l.f, n.shape,
        NumElements(ctx.input_shape(n, 0)) / std::max<int64_t>(1, NumElements(n.shape)));
    return;
  }
  const Shape& is = ctx.input_shape(n, 0);
  if (ctx.gpu()) {
    // Partial sums per (chunk, kept axes, innermost index) in one kernel, their sum in a second.
    Shape part = {is[0] / SumChunk(is)};
    for (int a = 1; a + 1 < static_cast<int>(is.size()); ++a) {
      if (std::find(n.attrs.ints.begin(), n.attrs.ints.end(), a) == n.attrs.ints.end()) {
        part.push_back(is[a]);
      }
    }
    part.push_back(is.back());
    ctx.GpuTileAll(l.aux[0], part);
    ctx.GpuTileAll(l.f, n.shape);
    return;
  }
  std::vector<Var> pv = ctx.Vars(static_cast<int>(l.aux[0].dimensions()));
  const int lanes = ops::Divisor(is.back(), ctx.vector_width());
  l.aux[0].compute_root().parallel(pv[0]).vectorize(pv.back(), lanes);
  l.aux[0].update().parallel(pv[0]).vectorize(pv.back(), lanes);
  l.f.compute_root();
}

Lowered LowerSum(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  const Shape& is = ctx.input_shape(n, 0);
  if (ChunkedSum(is, n.attrs.ints)) return LowerChunkedSum(ctx, n, in);
  std::vector<Var> v = ctx.Vars(static_cast<int>(n.shape.size()));
  Halide::RDom r = ops::ReductionDomain(is, n.attrs.ints, "r");
  Func f = ctx.NewFunc(n);
  Halide::Type t = ctx.TypeOf(n.dtype);
  ctx.Define(f, v, Halide::cast(t, 0));
  std::vector<Var> hv(v.rbegin(), v.rend());
  f(hv) += ctx.At(in[0], ops::ReductionIndex(is, n.attrs.ints, n.attrs.flag, v, r));
  return {f, {}};
}

// Gradient of a sum: dy broadcast back over the reduced axes.
// dx = broadcast_to(reshape(dy, keepdims shape), x.shape)
std::vector<Value> SumVjp(const VjpArgs& a) {
  Shape keep = a.x[0].shape();
  for (int64_t ax : a.attrs.ints) keep[ax] = 1;
  return {BroadcastTo(Reshape(a.dy, keep), a.x[0].shape())};
}

Lowered LowerMax(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  const Shape& is = ctx.input_shape(n, 0);
  std::vector<Var> v = ctx.Vars(static_cast<int>(n.shape.size()));
  Halide::RDom r = ops::ReductionDomain(is, n.attrs.ints, "r");
  Func f = ctx.NewFunc(n);
  Halide::Type t = ctx.TypeOf(n.dtype);
  ctx.Define(f, v, t.min());
  std::vector<Var> hv(v.rbegin(), v.rend());
  f(hv) =
      Halide::max(f(hv), ctx.At(in[0], ops::ReductionIndex(is, n.attrs.ints, n.attrs.flag, v, r)));
  return {f, {}};
}

// Gradient of a max: dy flows to the elements equal to the max (to every one of them on a tie).
// dx = dy * (x == y), both broadcast to x.shape
std::vector<Value> MaxVjp(const VjpArgs& a) {
  Shape keep = a.x[0].shape();
  for (int64_t ax : a.attrs.ints) keep[ax] = 1;
  Value mask = Equal(a.x[0], Reshape(a.y, keep));
  return {mask * Reshape(a.dy, keep)};
}

absl::StatusOr<TypeAndShape> InferArgMax(const std::vector<const Node*>& in, const Attrs& at) {
  if (at.ints.size() != 1) return absl::InvalidArgumentError("expected exactly one axis");
  absl::StatusOr<TypeAndShape> ts = InferReduce(in, at);
  if (!ts.ok()) return ts.status();
  return TypeAndShape{DType::kInt32, ts->shape};
}

// argmax: the first index of the largest value along the axis.
Lowered LowerArgMax(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  const Shape& is = ctx.input_shape(n, 0);
  std::vector<Var> v = ctx.Vars(static_cast<int>(n.shape.size()));
  Halide::RDom r = ops::ReductionDomain(is, n.attrs.ints, "r");
  Func best = ctx.NewFunc(n, "best");
  Halide::Type t = ctx.TypeOf(ctx.input_dtype(n, 0));
  std::vector<Var> hv(v.rbegin(), v.rend());
  best(hv) = Halide::Tuple(t.min(), 0);
  Expr x = ctx.At(in[0], ops::ReductionIndex(is, n.attrs.ints, false, v, r));
  Expr better = x > best(hv)[0];
  best(hv) = Halide::Tuple(Halide::select(better, x, best(hv)[0]),
                           Halide::select(better, Halide::cast<int32_t>(r.x), best(hv)[1]));
  Func f = ctx.NewFunc(n);
  ctx.Define(f, v, best(hv)[1]);
  return {f, {best}};
}

void ScheduleArgMax(LowerCtx& ctx, const Node& n, Lowered& l) {
  ctx.ScheduleMaterialized(l.aux[0], n.shape, ctx.input_shape(n, 0)[n.attrs.ints[0]]);
}

}  // namespace

extern const OpDef kSumOp = {"sum",    Pattern::kReduction, 1, InferReduce, SumVjp,
                             LowerSum, ScheduleSum};
extern const OpDef kMaxOp = {"max", Pattern::kReduction, 1, InferReduce, MaxVjp, LowerMax, nullptr};
extern const OpDef kArgMaxOp = {"argmax",    Pattern::kReduction, 1, InferArgMax, nullptr,
                                LowerArgMax, ScheduleArgMax};

}  // namespace kiln
