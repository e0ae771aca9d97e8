// 2-D pooling, NCHW. Max pooling is split so its backward pass never repeats the window search:
// max_pool2d_argmax finds each window's argmax once (int32, offset ky*K + kx in the window),
// max_pool2d_gather reads the values through it, and the gather's gradient max_pool2d_scatter
// routes dy back through the same indices. avg_pool2d counts padding as zeros (PyTorch's default
// count_include_pad) and has its own backward primitive.
// attrs.ints: {K, S, P} (square window, stride, padding); backward ops add {H, W}.
#include "dsl/ops/common.h"

namespace kiln {
namespace {

using Halide::Expr;
using Halide::Func;
using Halide::Var;

struct PoolAttrs {
  int k, s, p;
  explicit PoolAttrs(const std::vector<int64_t>& a)
      : k(static_cast<int>(a[0])), s(static_cast<int>(a[1])), p(static_cast<int>(a[2])) {}
};

absl::StatusOr<Shape> PoolShape(const Node& x, const Attrs& at, size_t extra) {
  if (at.ints.size() != 3 + extra)
    return absl::InvalidArgumentError("expected {kernel, stride, padding}");
  if (x.shape.size() != 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected [N, C, H, W], got ", ShapeString(x.shape)));
  }
  const int64_t k = at.ints[0], s = at.ints[1], p = at.ints[2];
  if (k < 1 || s < 1 || p < 0 || 2 * p > k) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected kernel >= 1, stride >= 1, 0 <= padding <= kernel/2, got kernel ", k,
                     ", stride ", s, ", padding ", p));
  }
  int64_t oh = (x.shape[2] + 2 * p - k) / s + 1, ow = (x.shape[3] + 2 * p - k) / s + 1;
  if (x.shape[2] + 2 * p < k || x.shape[3] + 2 * p < k) {
    return absl::InvalidArgumentError(
        absl::StrCat("window ", k, " larger than the padded input ", ShapeString(x.shape)));
  }
  return Shape{x.shape[0], x.shape[1], oh, ow};
}

absl::StatusOr<TypeAndShape> InferArgmax(const std::vector<const Node*>& in, const Attrs& at) {
  if (in[0]->dtype != DType::kFloat) return absl::InvalidArgumentError("expected a float input");
  absl::StatusOr<Shape> s = PoolShape(*in[0], at, 0);
  if (!s.ok()) return s.status();
  return TypeAndShape{DType::kInt32, *s};
}

// Input coordinate of window tap (ky, kx) of output (oy, ox), clamped into the image.
Expr Clamp(Expr c, int64_t extent) { return Halide::clamp(c, 0, static_cast<int>(extent) - 1); }

Lowered LowerArgmax(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  PoolAttrs a(n.attrs.ints);
  const Shape& xs = ctx.input_shape(n, 0);
  std::vector<Var> v = ctx.Vars(4);
  std::vector<Var> hv(v.rbegin(), v.rend());
  Halide::RDom r(0, a.k, 0, a.k, "r");  // kx, ky
  Expr iy = v[2] * a.s - a.p + r.y, ix = v[3] * a.s - a.p + r.x;
  Expr inside = iy >= 0 && iy < static_cast<int>(xs[2]) && ix >= 0 && ix < static_cast<int>(xs[3]);
  Halide::Type t = ctx.float_type();
  Expr x = Halide::select(inside, ctx.At(in[0], {v[0], v[1], Clamp(iy, xs[2]), Clamp(ix, xs[3])}),
                          t.min());
  Func best = ctx.NewFunc(n, "best");
  best(hv) = Halide::Tuple(t.min(), 0);
  Expr better = x > best(hv)[0];
  best(hv) = Halide::Tuple(Halide::select(better, x, best(hv)[0]),
                           Halide::select(better, r.y * a.k + r.x, best(hv)[1]));
  Func f = ctx.NewFunc(n);
  ctx.Define(f, v, best(hv)[1]);
  return {f, {best}, {r}};
}

void ScheduleArgmax(LowerCtx& ctx, const Node& n, Lowered& l) {
  if (ctx.gpu()) {  // one thread per pooled output, the window unrolled
    ctx.GpuTileAll(l.aux[0], n.shape);
    l.aux[0].update().unroll(l.rdoms[0].x).unroll(l.rdoms[0].y);
    return;
  }
  std::vector<Var> v = ctx.Vars(4);
  int vx = ops::Divisor(n.shape[3], ctx.vector_width());
  Func best = l.aux[0];
  best.compute_root().parallel(v[0]).vectorize(v[3], vx);
  best.update().parallel(v[0]).vectorize(v[3], vx).unroll(l.rdoms[0].x).unroll(l.rdoms[0].y);
}

absl::StatusOr<TypeAndShape> InferGather(const std::vector<const Node*>& in, const Attrs& at) {
  absl::StatusOr<Shape> s = PoolShape(*in[0], at, 0);
  if (!s.ok()) return s.status();
  if (in[1]->dtype != DType::kInt32 || in[1]->shape != *s) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected int32 indices of shape ", ShapeString(*s), ", got ",
                     DTypeName(in[1]->dtype), ShapeString(in[1]->shape)));
  }
  return TypeAndShape{in[0]->dtype, *s};
}

// y(n, c, oy, ox) = x(n, c, oy*S - P + idx / K, ox*S - P + idx % K)
Lowered LowerGather(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  PoolAttrs a(n.attrs.ints);
  const Shape& xs = ctx.input_shape(n, 0);
  std::vector<Var> v = ctx.Vars(4);
  Expr idx = ctx.At(in[1], v);
  Expr iy = v[2] * a.s - a.p + idx / a.k, ix = v[3] * a.s - a.p + idx % a.k;
  Func f = ctx.NewFunc(n);
  ctx.Define(f, v, ctx.At(in[0], {v[0], v[1], Clamp(iy, xs[2]), Clamp(ix, xs[3])}));
  return {f, {}};
}

std::vector<Value> GatherVjp(const VjpArgs& a) {
  Attrs at = a.attrs;
  at.ints.push_back(a.x[0].shape()[2]);
  at.ints.push_back(a.x[0].shape()[3]);
  return {a.dy.graph()->AddNode(OpKind::kMaxPool2DScatter, {a.dy, a.x[1]}, at), Value()};
}

// Backward ops see the output-shaped gradient and produce the input shape {N, C, H, W}.
absl::StatusOr<TypeAndShape> InferPoolBackward(const Node& dy, const Attrs& at) {
  if (at.ints.size() != 5 || dy.shape.size() != 4) {
    return absl::InvalidArgumentError(
        "expected dy [N, C, OH, OW] and {kernel, stride, padding, H, W}");
  }
  Node x;
  x.shape = {dy.shape[0], dy.shape[1], at.ints[3], at.ints[4]};
  absl::StatusOr<Shape> s = PoolShape(x, at, 2);
  if (!s.ok()) return s.status();
  if (*s != dy.shape) return absl::InvalidArgumentError("input size does not match the gradient");
  return TypeAndShape{DType::kFloat, x.shape};
}

absl::StatusOr<TypeAndShape> InferScatter(const std::vector<const Node*>& in, const Attrs& at) {
  if (in[1]->dtype != DType::kInt32 || in[1]->shape != in[0]->shape) {
    return absl::InvalidArgumentError("expected int32 indices shaped like dy");
  }
  return InferPoolBackward(*in[0], at);
}

// Sums f(oy, ox, dy(oy, ox)) over the windows that cover input (iy, ix): oy = (iy + P) / S - j
// for j in [0, ceil(K / S)), kept when oy is in range and the tap offset iy + P - oy*S < K.
template <typename Term>
Expr SumOverCoveringWindows(const PoolAttrs& a, const Shape& dys, const std::vector<Var>& v,
                            Halide::Type t, Term term) {
  Expr total = Halide::cast(t, 0);
  int reach = (a.k + a.s - 1) / a.s;
  for (int jy = 0; jy < reach; ++jy) {
    for (int jx = 0; jx < reach; ++jx) {
      Expr oy = (v[2] + a.p) / a.s - jy, ox = (v[3] + a.p) / a.s - jx;
      Expr offy = v[2] + a.p - oy * a.s, offx = v[3] + a.p - ox * a.s;
      Expr valid = oy >= 0 && oy < static_cast<int>(dys[2]) && ox >= 0 &&
                   ox < static_cast<int>(dys[3]) && offy < a.k && offx < a.k;
      Expr coy = Clamp(oy, dys[2]), cox = Clamp(ox, dys[3]);
      total += Halide::select(valid, term(coy, cox, offy * a.k + offx), Halide::cast(t, 0));
    }
  }
  return total;
}

// dx(n, c, iy, ix) = sum of dy over the windows covering (iy, ix) whose argmax is (iy, ix)
Lowered LowerScatter(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  PoolAttrs a(n.attrs.ints);
  const Shape& dys = ctx.input_shape(n, 0);
  std::vector<Var> v = ctx.Vars(4);
  Halide::Type t = ctx.float_type();
  Expr e = SumOverCoveringWindows(a, dys, v, t, [&](Expr oy, Expr ox, Expr tap) {
    return Halide::select(ctx.At(in[1], {v[0], v[1], oy, ox}) == tap,
                          ctx.At(in[0], {v[0], v[1], oy, ox}), Halide::cast(t, 0));
  });
  Func f = ctx.NewFunc(n);
  ctx.Define(f, v, e);
  return {f, {}};
}

absl::StatusOr<TypeAndShape> InferAvg(const std::vector<const Node*>& in, const Attrs& at) {
  if (in[0]->dtype != DType::kFloat) return absl::InvalidArgumentError("expected a float input");
  absl::StatusOr<Shape> s = PoolShape(*in[0], at, 0);
  if (!s.ok()) return s.status();
  return TypeAndShape{DType::kFloat, *s};
}

// y(n, c, oy, ox) = (1 / K^2) sum_{ky, kx} xpad(n, c, oy*S - P + ky, ox*S - P + kx)
Lowered LowerAvg(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  PoolAttrs a(n.attrs.ints);
  const Shape& xs = ctx.input_shape(n, 0);
  std::vector<Var> v = ctx.Vars(4);
  Halide::Type t = ctx.float_type();
  Expr total = Halide::cast(t, 0);
  for (int ky = 0; ky < a.k; ++ky) {
    for (int kx = 0; kx < a.k; ++kx) {
      Expr iy = v[2] * a.s - a.p + ky, ix = v[3] * a.s - a.p + kx;
      Expr inside =
          iy >= 0 && iy < static_cast<int>(xs[2]) && ix >= 0 && ix < static_cast<int>(xs[3]);
      total +=
          Halide::select(inside, ctx.At(in[0], {v[0], v[1], Clamp(iy, xs[2]), Clamp(ix, xs[3])}),
                         Halide::cast(t, 0));
    }
  }
  Func f = ctx.NewFunc(n);
  ctx.Define(f, v, total * Halide::cast(t, Expr(1.0 / (a.k * a.k))));
  return {f, {}};
}

std::vector<Value> AvgVjp(const VjpArgs& a) {
  Attrs at = a.attrs;
  at.ints.push_back(a.x[0].shape()[2]);
  at.ints.push_back(a.x[0].shape()[3]);
  return {a.dy.graph()->AddNode(OpKind::kAvgPool2DBackward, {a.dy}, at)};
}

absl::StatusOr<TypeAndShape> InferAvgBackward(const std::vector<const Node*>& in, const Attrs& at) {
  return InferPoolBackward(*in[0], at);
}

// dx(n, c, iy, ix) = (1 / K^2) sum of dy over the windows covering (iy, ix)
Lowered LowerAvgBackward(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  PoolAttrs a(n.attrs.ints);
  const Shape& dys = ctx.input_shape(n, 0);
  std::vector<Var> v = ctx.Vars(4);
  Halide::Type t = ctx.float_type();
  Expr e = SumOverCoveringWindows(a, dys, v, t, [&](Expr oy, Expr ox, Expr) {
    return ctx.At(in[0], {v[0], v[1], oy, ox});
  });
  Func f = ctx.NewFunc(n);
  ctx.Define(f, v, e * Halide::cast(t, Expr(1.0 / (a.k * a.k))));
  return {f, {}};
}

}  // namespace

extern const OpDef kMaxPool2DArgmaxOp = {
    "max_pool2d_argmax", Pattern::kReduction, 1, InferArgmax, nullptr, LowerArgmax, ScheduleArgmax};
extern const OpDef kMaxPool2DGatherOp = {
    "max_pool2d_gather", Pattern::kElementwise, 2, InferGather, GatherVjp, LowerGather, nullptr};
extern const OpDef kMaxPool2DScatterOp = {
    "max_pool2d_scatter", Pattern::kElementwise, 2, InferScatter, nullptr, LowerScatter, nullptr};
extern const OpDef kAvgPool2DOp = {
    "avg_pool2d", Pattern::kElementwise, 1, InferAvg, AvgVjp, LowerAvg, nullptr};
extern const OpDef kAvgPool2DBackwardOp = {"avg_pool2d_backward",
                                           Pattern::kElementwise,
                                           1,
                                           InferAvgBackward,
                                           nullptr,
                                           LowerAvgBackward,
                                           nullptr};

}  // namespace kiln
