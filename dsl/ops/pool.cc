// 2-D pooling, NCHW. Max pooling is split so its backward pass never repeats the window search:
// max_pool2d_argmax finds each window's argmax once (int32, offset ky*K + kx in the window; a NaN
// in the window is its maximum, as in PyTorch),
// max_pool2d_gather reads the values through it, and the gather's gradient max_pool2d_scatter
// routes dy back through the same indices. A gather may end in a ReLU (Pool2dAttrs::relu): the
// compiler rewrites max_pool2d(relu(x)) so, and its gradient then never needs relu's
// full-resolution mask (compiler/passes.h). avg_pool2d counts padding as zeros (PyTorch's default
// count_include_pad) and has its own backward primitive.
// Attributes: Pool2dAttrs; the backward ops Pool2dBackwardAttrs (adding the input's size).
#include "dsl/ops/common.h"

namespace kiln {
namespace {

using Halide::Expr;
using Halide::Func;
using Halide::Var;

// The window as ints, the type Halide's index expressions take.
struct Window {
  int k, s, p;  // kernel, stride, padding
  explicit Window(const Pool2dAttrs& a)
      : k(static_cast<int>(a.kernel)),
        s(static_cast<int>(a.stride)),
        p(static_cast<int>(a.padding)) {}
};

absl::StatusOr<Shape> PoolShape(const Shape& x, const Pool2dAttrs& a) {
  if (x.size() != 4) {
    return absl::InvalidArgumentError(absl::StrCat("expected [N, C, H, W], got ", ShapeString(x)));
  }
  const int64_t k = a.kernel, s = a.stride, p = a.padding;
  if (k < 1 || s < 1 || p < 0 || 2 * p > k) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected kernel >= 1, stride >= 1, 0 <= padding <= kernel/2, got kernel ", k,
                     ", stride ", s, ", padding ", p));
  }
  if (x[2] + 2 * p < k || x[3] + 2 * p < k) {
    return absl::InvalidArgumentError(
        absl::StrCat("window ", k, " larger than the padded input ", ShapeString(x)));
  }
  return Shape{x[0], x[1], (x[2] + 2 * p - k) / s + 1, (x[3] + 2 * p - k) / s + 1};
}

// The output shape of a forward pooling node; only a gather may carry the fused ReLU.
absl::StatusOr<Shape> PoolShape(const Node& x, const Attrs& at, bool relu_allowed = false) {
  KILN_ASSIGN_OR_RETURN(const Pool2dAttrs* a, ops::AttrsAs<Pool2dAttrs>(at));
  if (a->relu && !relu_allowed) {
    return absl::InvalidArgumentError("relu is an attribute of max_pool2d_gather only");
  }
  return PoolShape(x.shape, *a);
}

absl::StatusOr<TypeAndShape> InferArgmax(const std::vector<const Node*>& in, const Attrs& at) {
  if (in[0]->dtype != DType::kFloat) return absl::InvalidArgumentError("expected a float input");
  KILN_ASSIGN_OR_RETURN(Shape s, PoolShape(*in[0], at));
  return TypeAndShape{DType::kInt32, s};
}

// Input coordinate of window tap (ky, kx) of output (oy, ox), clamped into the image.
Expr Clamp(Expr c, int64_t extent) { return Halide::clamp(c, 0, static_cast<int>(extent) - 1); }

Lowered LowerArgmax(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  Window a(n.attrs.Get<Pool2dAttrs>());
  const Shape& xs = ctx.input_shape(n, 0);
  std::vector<Var> v = ctx.Vars(4);
  Halide::RDom r = ctx.ReductionDomain({a.k, a.k}, "r");
  std::vector<Halide::RVar> rv = ctx.RVars(r);
  Halide::RVar ky = rv[0], kx = rv[1];
  Expr iy = v[2] * a.s - a.p + ky, ix = v[3] * a.s - a.p + kx;
  Expr inside = iy >= 0 && iy < static_cast<int>(xs[2]) && ix >= 0 && ix < static_cast<int>(xs[3]);
  Halide::Type t = ctx.float_type();
  Expr x = Halide::select(inside, ctx.At(in[0], {v[0], v[1], Clamp(iy, xs[2]), Clamp(ix, xs[3])}),
                          t.min());
  // Started at tap 0 (not at the lowest float), the maximum is the value at the argmax whenever
  // tap 0 lies in the image (always without padding), -infinity and NaN included: a gather
  // (LowerGather) reads it from here instead of from the input again.
  Expr iy0 = v[2] * a.s - a.p, ix0 = v[3] * a.s - a.p;
  Expr x0 =
      Halide::select(iy0 >= 0 && ix0 >= 0,
                     ctx.At(in[0], {v[0], v[1], Clamp(iy0, xs[2]), Clamp(ix0, xs[3])}), t.min());
  Func best = ctx.NewFunc(n, "best");
  ctx.Ref(best, v) = Halide::Tuple(x0, 0);
  // A NaN in the window wins (PyTorch's max_pool2d also propagates it): a diverged activation
  // shows in the pooled output instead of being skipped.
  Expr better = x > ctx.Ref(best, v)[0] || Halide::is_nan(x);
  ctx.Ref(best, v) = Halide::Tuple(Halide::select(better, x, ctx.Ref(best, v)[0]),
                                   Halide::select(better, ky * a.k + kx, ctx.Ref(best, v)[1]));
  Func f = ctx.NewFunc(n);
  ctx.Define(f, v, ctx.Ref(best, v)[1]);
  return {f, {{"best", best}}, {{"window", r}}};
}

void ScheduleArgmax(LowerCtx& ctx, const Node& n, Lowered& l) {
  Func best = l.helpers.Get("best");
  std::vector<Halide::RVar> window = ctx.RVars(l.rdoms.Get("window"));
  Halide::RVar ky = window[0], kx = window[1];
  if (ctx.gpu()) {  // one thread per pooled output, the window unrolled
    ctx.GpuTileAll(best, n.shape);
    best.update().unroll(kx).unroll(ky);
    return;
  }
  std::vector<Var> v = ctx.Vars(4);
  if (ctx.layout(n) == Layout::kBatchInner) {
    // Stored batch-inner like its input: vectors of images, parallel over channels.
    const int lanes = ctx.BatchLanes(n.shape[0]);
    ctx.StoreAs(best, 4, Layout::kBatchInner);
    best.compute_root().reorder(v[0], v[3], v[2], v[1]).vectorize(v[0], lanes).parallel(v[1]);
    best.update()
        .reorder(v[0], kx, ky, v[3], v[2], v[1])
        .vectorize(v[0], lanes)
        .unroll(kx)
        .unroll(ky)
        .parallel(v[1]);
    return;
  }
  int vx = ops::Divisor(n.shape[3], ctx.vector_width());
  best.compute_root().parallel(v[0]).vectorize(v[3], vx);
  best.update().parallel(v[0]).vectorize(v[3], vx).unroll(kx).unroll(ky);
}

absl::StatusOr<TypeAndShape> InferGather(const std::vector<const Node*>& in, const Attrs& at) {
  KILN_ASSIGN_OR_RETURN(Shape s, PoolShape(*in[0], at, /*relu_allowed=*/true));
  if (in[1]->dtype != DType::kInt32 || in[1]->shape != s) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected int32 indices of shape ", ShapeString(s), ", got ",
                     DTypeName(in[1]->dtype), ShapeString(in[1]->shape)));
  }
  return TypeAndShape{in[0]->dtype, s};
}

// y(n, c, oy, ox) = x(n, c, oy*S - P + idx / K, ox*S - P + idx % K), then max(y, 0) with `relu`
Lowered LowerGather(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  const Pool2dAttrs& attrs = n.attrs.Get<Pool2dAttrs>();
  Window a(attrs);
  const Shape& xs = ctx.input_shape(n, 0);
  std::vector<Var> v = ctx.Vars(4);
  Expr idx = ctx.At(in[1], v);
  Expr y;
  // The argmax of this input, without padding, computed in this pipeline: its window maximum is
  // the value at the index (LowerArgmax), read there instead of the K*K taps of the input again
  // (the tutorial CNN: a pass over conv1's 4 MB output fewer per step).
  const Node& arg = ctx.input(n, 1);
  Func* best = arg.op == OpKind::kMaxPool2DArgmax && arg.inputs[0] == n.inputs[0] && a.p == 0
                   ? ctx.Helper(arg.id, "best")
                   : nullptr;
  if (best != nullptr) {
    y = ctx.Ref(*best, v)[0];
  } else if (ctx.layout(n) == Layout::kBatchInner) {
    // A vector holds images whose argmax taps differ: a select over the window's taps (K*K
    // dense vector loads) instead of a gather with a different address in every lane.
    y = Halide::cast(ctx.float_type(), 0);
    for (int tap = a.k * a.k - 1; tap >= 0; --tap) {
      Expr iy = v[2] * a.s - a.p + tap / a.k, ix = v[3] * a.s - a.p + tap % a.k;
      y = Halide::select(idx == tap,
                         ctx.At(in[0], {v[0], v[1], Clamp(iy, xs[2]), Clamp(ix, xs[3])}), y);
    }
  } else {
    Expr iy = v[2] * a.s - a.p + idx / a.k, ix = v[3] * a.s - a.p + idx % a.k;
    y = ctx.At(in[0], {v[0], v[1], Clamp(iy, xs[2]), Clamp(ix, xs[3])});
  }
  if (attrs.relu) y = Halide::max(y, Halide::cast(ctx.float_type(), 0));
  Func f = ctx.NewFunc(n);
  ctx.Define(f, v, y);
  return {f};
}

// The attributes of the backward op of a pooling node with input x (the window only).
Attrs BackwardAttrs(const VjpArgs& a) {
  const Shape& x = a.x[0].shape();
  Pool2dAttrs window = a.attrs.Get<Pool2dAttrs>();
  window.relu = false;
  return Attrs{Pool2dBackwardAttrs{window, x[2], x[3]}};
}

// dx = scatter(dy) through the argmax; with the fused ReLU, scatter(dy step(y)): the ReLU's
// gradient is taken on the pooled values, a quarter of the input's for 2x2 windows.
std::vector<Value> GatherVjp(const VjpArgs& a) {
  Value dy = a.attrs.Get<Pool2dAttrs>().relu ? a.dy * Step(a.y) : a.dy;
  return {a.dy.graph()->AddNode(OpKind::kMaxPool2DScatter, {dy, a.x[1]}, BackwardAttrs(a)),
          Value()};
}

// Backward ops see the output-shaped gradient and produce the input shape {N, C, H, W}.
absl::StatusOr<TypeAndShape> InferPoolBackward(const Node& dy, const Attrs& at) {
  KILN_ASSIGN_OR_RETURN(const Pool2dBackwardAttrs* a, ops::AttrsAs<Pool2dBackwardAttrs>(at));
  if (dy.shape.size() != 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected dy [N, C, OH, OW], got ", ShapeString(dy.shape)));
  }
  Shape x = {dy.shape[0], dy.shape[1], a->input_h, a->input_w};
  KILN_ASSIGN_OR_RETURN(Shape s, PoolShape(x, a->pool));
  if (s != dy.shape) return absl::InvalidArgumentError("input size does not match the gradient");
  return TypeAndShape{DType::kFloat, x};
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
Expr SumOverCoveringWindows(const Window& a, const Shape& dys, const std::vector<Var>& v,
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
  Window a(n.attrs.Get<Pool2dBackwardAttrs>().pool);
  const Shape& dys = ctx.input_shape(n, 0);
  std::vector<Var> v = ctx.Vars(4);
  Halide::Type t = ctx.float_type();
  Expr e = SumOverCoveringWindows(a, dys, v, t, [&](Expr oy, Expr ox, Expr tap) {
    return Halide::select(ctx.At(in[1], {v[0], v[1], oy, ox}) == tap,
                          ctx.At(in[0], {v[0], v[1], oy, ox}), Halide::cast(t, 0));
  });
  Func f = ctx.NewFunc(n);
  ctx.Define(f, v, e);
  return {f};
}

absl::StatusOr<TypeAndShape> InferAvg(const std::vector<const Node*>& in, const Attrs& at) {
  if (in[0]->dtype != DType::kFloat) return absl::InvalidArgumentError("expected a float input");
  KILN_ASSIGN_OR_RETURN(Shape s, PoolShape(*in[0], at));
  return TypeAndShape{DType::kFloat, s};
}

// y(n, c, oy, ox) = (1 / K^2) sum_{ky, kx} xpad(n, c, oy*S - P + ky, ox*S - P + kx)
Lowered LowerAvg(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  Window a(n.attrs.Get<Pool2dAttrs>());
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
  return {f};
}

std::vector<Value> AvgVjp(const VjpArgs& a) {
  return {a.dy.graph()->AddNode(OpKind::kAvgPool2DBackward, {a.dy}, BackwardAttrs(a))};
}

absl::StatusOr<TypeAndShape> InferAvgBackward(const std::vector<const Node*>& in, const Attrs& at) {
  return InferPoolBackward(*in[0], at);
}

// dx(n, c, iy, ix) = (1 / K^2) sum of dy over the windows covering (iy, ix)
Lowered LowerAvgBackward(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  Window a(n.attrs.Get<Pool2dBackwardAttrs>().pool);
  const Shape& dys = ctx.input_shape(n, 0);
  std::vector<Var> v = ctx.Vars(4);
  Halide::Type t = ctx.float_type();
  Expr e = SumOverCoveringWindows(a, dys, v, t, [&](Expr oy, Expr ox, Expr) {
    return ctx.At(in[0], {v[0], v[1], oy, ox});
  });
  Func f = ctx.NewFunc(n);
  ctx.Define(f, v, e * Halide::cast(t, Expr(1.0 / (a.k * a.k))));
  return {f};
}

}  // namespace

// Every pooling op's output is an [N, C, H, W] activation (batch_activation, the last field).
extern const OpDef kMaxPool2DArgmaxOp = {
    "max_pool2d_argmax", Pattern::kReduction, 1,       InferArgmax, nullptr,
    LowerArgmax,         ScheduleArgmax,      nullptr, nullptr,     true};
extern const OpDef kMaxPool2DGatherOp = {"max_pool2d_gather",
                                         Pattern::kElementwise,
                                         2,
                                         InferGather,
                                         GatherVjp,
                                         LowerGather,
                                         nullptr,
                                         nullptr,
                                         nullptr,
                                         true};
extern const OpDef kMaxPool2DScatterOp = {"max_pool2d_scatter",
                                          Pattern::kElementwise,
                                          2,
                                          InferScatter,
                                          nullptr,
                                          LowerScatter,
                                          nullptr,
                                          nullptr,
                                          nullptr,
                                          true};
extern const OpDef kAvgPool2DOp = {
    "avg_pool2d", Pattern::kElementwise, 1, InferAvg, AvgVjp, LowerAvg, nullptr, nullptr, nullptr,
    true};
extern const OpDef kAvgPool2DBackwardOp = {"avg_pool2d_backward",
                                           Pattern::kElementwise,
                                           1,
                                           InferAvgBackward,
                                           nullptr,
                                           LowerAvgBackward,
                                           nullptr,
                                           nullptr,
                                           nullptr,
                                           true};

}  // namespace kiln
