// Reductions over axes: sum, max, argmax. Materialized (compute_root) with the default schedule of
// LowerCtx::ScheduleMaterialized: vectorized over the innermost kept axis, parallel over the
// outermost when the work is worth a thread wake-up. Attrs: ints = sorted axes, flag = keepdims.
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

Lowered LowerSum(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  const Shape& is = ctx.input_shape(n, 0);
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

extern const OpDef kSumOp = {"sum", Pattern::kReduction, 1, InferReduce, SumVjp, LowerSum, nullptr};
extern const OpDef kMaxOp = {"max", Pattern::kReduction, 1, InferReduce, MaxVjp, LowerMax, nullptr};
extern const OpDef kArgMaxOp = {"argmax",    Pattern::kReduction, 1, InferArgMax, nullptr,
                                LowerArgMax, ScheduleArgMax};

}  // namespace kiln
