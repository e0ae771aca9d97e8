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

// reshape: attrs.ints = new shape (same element count).
absl::StatusOr<TypeAndShape> InferReshape(const std::vector<const Node*>& in, const Attrs& at) {
  for (int64_t d : at.ints) {
    if (d <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("expected positive dimensions, got ", ShapeString(at.ints)));
    }
  }
  if (NumElements(at.ints) != NumElements(in[0]->shape)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected a shape with ", NumElements(in[0]->shape), " elements like ",
        ShapeString(in[0]->shape), ", got ", ShapeString(at.ints), " with ", NumElements(at.ints)));
  }
  return TypeAndShape{in[0]->dtype, at.ints};
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
  return {f, {}};
}

// dx = reshape(dy, x.shape)
std::vector<Value> ReshapeVjp(const VjpArgs& a) { return {Reshape(a.dy, a.x[0].shape())}; }

// transpose: attrs.ints = permutation; out.shape[i] = in.shape[perm[i]].
absl::StatusOr<TypeAndShape> InferTranspose(const std::vector<const Node*>& in, const Attrs& at) {
  const Shape& s = in[0]->shape;
  std::vector<int64_t> sorted = at.ints;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> iota(s.size());
  std::iota(iota.begin(), iota.end(), 0);
  if (sorted != iota) {
    return absl::InvalidArgumentError(absl::StrCat("expected a permutation of the ", s.size(),
                                                   " axes, got [", absl::StrJoin(at.ints, ", "),
                                                   "]"));
  }
  Shape out;
  for (int64_t p : at.ints) out.push_back(s[p]);
  return TypeAndShape{in[0]->dtype, out};
}

Lowered LowerTranspose(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  std::vector<Var> v = ctx.Vars(static_cast<int>(n.shape.size()));
  std::vector<Expr> idx(v.size());
  for (size_t i = 0; i < v.size(); ++i) idx[n.attrs.ints[i]] = v[i];
  Func f = ctx.NewFunc(n);
  ctx.Define(f, v, ctx.At(in[0], idx));
  return {f, {}};
}

// dx = transpose(dy, inverse(perm))
std::vector<Value> TransposeVjp(const VjpArgs& a) {
  std::vector<int64_t> inv(a.attrs.ints.size());
  for (size_t i = 0; i < inv.size(); ++i) inv[a.attrs.ints[i]] = static_cast<int64_t>(i);
  return {Transpose(a.dy, inv)};
}

// broadcast_to: attrs.ints = target shape; NumPy rules.
absl::StatusOr<TypeAndShape> InferBroadcastTo(const std::vector<const Node*>& in, const Attrs& at) {
  absl::StatusOr<Shape> s = ops::BroadcastShapes(in[0]->shape, at.ints);
  if (!s.ok()) return s.status();
  if (*s != at.ints) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot broadcast ", ShapeString(in[0]->shape), " to ", ShapeString(at.ints)));
  }
  return TypeAndShape{in[0]->dtype, at.ints};
}

Lowered LowerBroadcastTo(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  std::vector<Var> v = ctx.Vars(static_cast<int>(n.shape.size()));
  Func f = ctx.NewFunc(n);
  ctx.Define(f, v, ctx.Broadcast(in[0], ctx.input_shape(n, 0), v));
  return {f, {}};
}

// dx = dy; autodiff sums it back over the broadcast axes.
std::vector<Value> BroadcastToVjp(const VjpArgs& a) { return {a.dy}; }

}  // namespace

extern const OpDef kReshapeOp = {"reshape",  Pattern::kInjective, 1,      InferReshape,
                                 ReshapeVjp, LowerReshape,        nullptr};
extern const OpDef kTransposeOp = {"transpose",  Pattern::kInjective, 1,      InferTranspose,
                                   TransposeVjp, LowerTranspose,      nullptr};
extern const OpDef kBroadcastToOp = {"broadcast_to", Pattern::kInjective, 1,      InferBroadcastTo,
                                     BroadcastToVjp, LowerBroadcastTo,    nullptr};

}  // namespace kiln
