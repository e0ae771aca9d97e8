// Injective ops that only move data: reshape, transpose, broadcast_to. Inlined into consumers;
// they index their input with affine expressions (reshape of the middle axes is the only place a
// div/mod can appear, and only when it merges several axes into one).
#include <algorithm>
#include <numeric>

#include "dsl/ops/common.h"

namespace kiln {
namespace {

using Halide::Expr;
using Halide::Func;
using Halide::Var;

// reshape: ShapeAttrs, the new shape (same element count).
absl::StatusOr<TypeAndShape> InferReshape(const std::vector<const Node*>& in, const Attrs& at) {
  KILN_ASSIGN_OR_RETURN(const ShapeAttrs* a, ops::AttrsAs<ShapeAttrs>(at));
  const Shape& s = a->shape;
  for (int64_t d : s) {
    if (d <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("expected positive dimensions, got ", ShapeString(s)));
    }
  }
  if (NumElements(s) != NumElements(in[0]->shape)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected a shape with ", NumElements(in[0]->shape), " elements like ",
        ShapeString(in[0]->shape), ", got ", ShapeString(s), " with ", NumElements(s)));
  }
  return TypeAndShape{in[0]->dtype, s};
}

Lowered LowerReshape(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  const Shape& is = ctx.input_shape(n, 0);
  const Shape& os = n.shape;
  std::vector<Var> v = ctx.Vars(static_cast<int>(os.size()));
  // Axes equal at both ends map one to one; only the middle is re-linearized.
  size_t pre = 0;
  while (pre < is.size() && pre < os.size() && is[pre] == os[pre]) ++pre;
  size_t suf = 0;
  while (suf < is.size() - pre && suf < os.size() - pre &&
         is[is.size() - 1 - suf] == os[os.size() - 1 - suf]) {
    ++suf;
  }
  std::vector<Expr> idx(is.size());
  for (size_t i = 0; i < pre; ++i) idx[i] = v[i];
  for (size_t i = 0; i < suf; ++i) idx[is.size() - 1 - i] = v[os.size() - 1 - i];
  Expr linear = 0;
  for (size_t i = pre; i < os.size() - suf; ++i) {
    linear = linear * static_cast<int>(os[i]) + v[i];
  }
  int64_t stride = 1;
  for (size_t i = is.size() - suf; i-- > pre;) {
    size_t mid_count = is.size() - suf - pre;
    Expr q = stride == 1 ? linear : linear / static_cast<int>(stride);
    idx[i] = (mid_count == 1 || i == pre) ? q : q % static_cast<int>(is[i]);
    stride *= is[i];
  }
  Func f = ctx.NewFunc(n);
  ctx.Define(f, v, ctx.At(in[0], idx));
  return {f};
}

// dx = reshape(dy, x.shape)
std::vector<Value> ReshapeVjp(const VjpArgs& a) { return {Reshape(a.dy, a.x[0].shape())}; }

// transpose: TransposeAttrs; out.shape[i] = in.shape[perm[i]].
absl::StatusOr<TypeAndShape> InferTranspose(const std::vector<const Node*>& in, const Attrs& at) {
  KILN_ASSIGN_OR_RETURN(const TransposeAttrs* a, ops::AttrsAs<TransposeAttrs>(at));
  const Shape& s = in[0]->shape;
  std::vector<int64_t> sorted = a->perm;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> iota(s.size());
  std::iota(iota.begin(), iota.end(), 0);
  if (sorted != iota) {
    return absl::InvalidArgumentError(absl::StrCat("expected a permutation of the ", s.size(),
                                                   " axes, got [", absl::StrJoin(a->perm, ", "),
                                                   "]"));
  }
  Shape out;
  for (int64_t p : a->perm) out.push_back(s[p]);
  return TypeAndShape{in[0]->dtype, out};
}

Lowered LowerTranspose(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  std::vector<Var> v = ctx.Vars(static_cast<int>(n.shape.size()));
  std::vector<Expr> idx(v.size());
  const std::vector<int64_t>& perm = n.attrs.Get<TransposeAttrs>().perm;
  for (size_t i = 0; i < v.size(); ++i) idx[perm[i]] = v[i];
  Func f = ctx.NewFunc(n);
  ctx.Define(f, v, ctx.At(in[0], idx));
  return {f};
}

// dx = transpose(dy, inverse(perm))
std::vector<Value> TransposeVjp(const VjpArgs& a) {
  const std::vector<int64_t>& perm = a.attrs.Get<TransposeAttrs>().perm;
  std::vector<int64_t> inv(perm.size());
  for (size_t i = 0; i < inv.size(); ++i) inv[perm[i]] = static_cast<int64_t>(i);
  return {Transpose(a.dy, inv)};
}

// broadcast_to: ShapeAttrs, the target shape; NumPy rules.
absl::StatusOr<TypeAndShape> InferBroadcastTo(const std::vector<const Node*>& in, const Attrs& at) {
  KILN_ASSIGN_OR_RETURN(const ShapeAttrs* a, ops::AttrsAs<ShapeAttrs>(at));
  KILN_ASSIGN_OR_RETURN(Shape s, ops::BroadcastShapes(in[0]->shape, a->shape));
  if (s != a->shape) {
    return absl::InvalidArgumentError(absl::StrCat("cannot broadcast ", ShapeString(in[0]->shape),
                                                   " to ", ShapeString(a->shape)));
  }
  return TypeAndShape{in[0]->dtype, s};
}

Lowered LowerBroadcastTo(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  std::vector<Var> v = ctx.Vars(static_cast<int>(n.shape.size()));
  Func f = ctx.NewFunc(n);
  ctx.Define(f, v, ctx.Broadcast(in[0], ctx.input_shape(n, 0), v));
  return {f};
}

// dx = dy; autodiff sums it back over the broadcast axes.
std::vector<Value> BroadcastToVjp(const VjpArgs& a) { return {a.dy}; }

// slice: SliceAttrs; out(.., i, ..) = x(.., start + i, ..)
absl::StatusOr<TypeAndShape> InferSlice(const std::vector<const Node*>& in, const Attrs& at) {
  KILN_ASSIGN_OR_RETURN(const SliceAttrs* a, ops::AttrsAs<SliceAttrs>(at));
  const Shape& s = in[0]->shape;
  if (a->axis < 0 || a->axis >= static_cast<int64_t>(s.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected an axis of a rank-", s.size(), " input, got axis ", a->axis));
  }
  const int64_t axis = a->axis, start = a->start, size = a->size;
  if (start < 0 || size <= 0 || start + size > s[axis]) {
    return absl::InvalidArgumentError(absl::StrCat("slice [", start, ", ", start + size,
                                                   ") out of range: expected within [0, ", s[axis],
                                                   ") on axis ", axis));
  }
  Shape out = s;
  out[axis] = size;
  return TypeAndShape{in[0]->dtype, out};
}

Lowered LowerSlice(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  std::vector<Var> v = ctx.Vars(static_cast<int>(n.shape.size()));
  const SliceAttrs& a = n.attrs.Get<SliceAttrs>();
  std::vector<Expr> idx(v.begin(), v.end());
  idx[a.axis] = idx[a.axis] + static_cast<int>(a.start);
  Func f = ctx.NewFunc(n);
  ctx.Define(f, v, ctx.At(in[0], idx));
  return {f};
}

// dx = dy zero-padded back to x's extent along the axis.
std::vector<Value> SliceVjp(const VjpArgs& a) {
  const SliceAttrs& s = a.attrs.Get<SliceAttrs>();
  PadAttrs pad;
  pad.before.assign(a.x[0].rank(), 0);
  pad.after.assign(a.x[0].rank(), 0);
  pad.before[s.axis] = s.start;
  pad.after[s.axis] = a.x[0].shape()[s.axis] - s.start - s.size;
  return {a.dy.graph()->AddNode(OpKind::kPad, {a.dy}, Attrs{pad})};
}

// pad: PadAttrs, the amounts before and after each axis and the fill value.
absl::StatusOr<TypeAndShape> InferPad(const std::vector<const Node*>& in, const Attrs& at) {
  KILN_ASSIGN_OR_RETURN(const PadAttrs* a, ops::AttrsAs<PadAttrs>(at));
  const Shape& s = in[0]->shape;
  if (a->before.size() != s.size() || a->after.size() != s.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected ", 2 * s.size(), " padding amounts (before, after per axis), got ",
                     a->before.size() + a->after.size()));
  }
  Shape out = s;
  for (size_t i = 0; i < s.size(); ++i) {
    if (a->before[i] < 0 || a->after[i] < 0) {
      return absl::InvalidArgumentError("expected non-negative padding");
    }
    out[i] += a->before[i] + a->after[i];
  }
  return TypeAndShape{in[0]->dtype, out};
}

Lowered LowerPad(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  const PadAttrs& a = n.attrs.Get<PadAttrs>();
  const Shape& is = ctx.input_shape(n, 0);
  std::vector<Var> v = ctx.Vars(static_cast<int>(n.shape.size()));
  std::vector<Expr> idx;
  Expr inside = Halide::Internal::const_true();
  for (size_t i = 0; i < v.size(); ++i) {
    Expr c = v[i] - static_cast<int>(a.before[i]);
    inside = inside && c >= 0 && c < static_cast<int>(is[i]);
    idx.push_back(Halide::clamp(c, 0, static_cast<int>(is[i]) - 1));
  }
  Halide::Type t = ctx.TypeOf(n.dtype);
  Func f = ctx.NewFunc(n);
  ctx.Define(f, v, Halide::select(inside, ctx.At(in[0], idx), Halide::cast(t, Expr(a.value))));
  return {f};
}

// dx = dy sliced back to x's extent on every padded axis.
std::vector<Value> PadVjp(const VjpArgs& a) {
  const PadAttrs& p = a.attrs.Get<PadAttrs>();
  Value d = a.dy;
  for (size_t i = 0; i < a.x[0].shape().size(); ++i) {
    if (p.before[i] == 0 && p.after[i] == 0) continue;
    d = Slice(d, static_cast<int64_t>(i), p.before[i], a.x[0].shape()[i]);
  }
  return {d};
}

// concat: any number of inputs, equal except along ConcatAttrs::axis.
absl::StatusOr<TypeAndShape> InferConcat(const std::vector<const Node*>& in, const Attrs& at) {
  KILN_ASSIGN_OR_RETURN(const ConcatAttrs* a, ops::AttrsAs<ConcatAttrs>(at));
  if (in.empty()) return absl::InvalidArgumentError("expected at least one input");
  const Shape& s0 = in[0]->shape;
  const int64_t axis = a->axis;
  if (axis < 0 || axis >= static_cast<int64_t>(s0.size())) {
    return absl::InvalidArgumentError(absl::StrCat("axis out of range for rank ", s0.size()));
  }
  Shape out = s0;
  out[axis] = 0;
  for (const Node* x : in) {
    Shape a = x->shape, b = s0;
    if (a.size() == b.size()) a[axis] = b[axis] = 0;
    if (a != b || x->dtype != in[0]->dtype) {
      return absl::InvalidArgumentError(
          absl::StrCat("expected inputs equal except along axis ", axis, ": '", x->name, "' is ",
                       DTypeName(x->dtype), ShapeString(x->shape), ", '", in[0]->name, "' is ",
                       DTypeName(in[0]->dtype), ShapeString(s0)));
    }
    out[axis] += x->shape[axis];
  }
  return TypeAndShape{in[0]->dtype, out};
}

Lowered LowerConcat(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  const int64_t axis = n.attrs.Get<ConcatAttrs>().axis;
  std::vector<Var> v = ctx.Vars(static_cast<int>(n.shape.size()));
  // Built from the last input backwards: select(v < end_0, in_0, select(v < end_1, in_1, ...)).
  std::vector<int64_t> starts;
  int64_t off = 0;
  for (size_t k = 0; k < in.size(); ++k) {
    starts.push_back(off);
    off += ctx.input_shape(n, static_cast<int>(k))[axis];
  }
  Expr e;
  for (size_t k = in.size(); k-- > 0;) {
    const int64_t size = ctx.input_shape(n, static_cast<int>(k))[axis];
    std::vector<Expr> idx(v.begin(), v.end());
    idx[axis] = Halide::clamp(v[axis] - static_cast<int>(starts[k]), 0, static_cast<int>(size) - 1);
    Expr value = ctx.At(in[k], idx);
    e = e.defined() ? Halide::select(v[axis] < static_cast<int>(starts[k] + size), value, e)
                    : value;
  }
  Func f = ctx.NewFunc(n);
  ctx.Define(f, v, e);
  return {f};
}

// dx_k = slice(dy, axis, start_k, size_k)
std::vector<Value> ConcatVjp(const VjpArgs& a) {
  const int64_t axis = a.attrs.Get<ConcatAttrs>().axis;
  std::vector<Value> out;
  int64_t off = 0;
  for (const Value& x : a.x) {
    out.push_back(Slice(a.dy, axis, off, x.shape()[axis]));
    off += x.shape()[axis];
  }
  return out;
}

// Constant folding: moving a constant fill's elements leaves the fill.
double FoldView(const std::vector<double>& x, const Attrs&) { return x[0]; }

}  // namespace

extern const OpDef kSliceOp = {"slice",  Pattern::kInjective, 1,      InferSlice,
                               SliceVjp, LowerSlice,          nullptr};
extern const OpDef kPadOp = {"pad", Pattern::kInjective, 1, InferPad, PadVjp, LowerPad, nullptr};
extern const OpDef kConcatOp = {"concat",  Pattern::kInjective, -1,     InferConcat,
                                ConcatVjp, LowerConcat,         nullptr};
extern const OpDef kReshapeOp = {"reshape",  Pattern::kInjective, 1,       InferReshape,
                                 ReshapeVjp, LowerReshape,        nullptr, FoldView};
extern const OpDef kTransposeOp = {"transpose",  Pattern::kInjective, 1,       InferTranspose,
                                   TransposeVjp, LowerTranspose,      nullptr, FoldView};
extern const OpDef kBroadcastToOp = {"broadcast_to", Pattern::kInjective, 1,       InferBroadcastTo,
                                     BroadcastToVjp, LowerBroadcastTo,    nullptr, FoldView};

}  // namespace kiln
