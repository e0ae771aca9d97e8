// clip and dropout.
//
// dropout's mask is a hash of (seed, training step, element index), not Halide's random_float:
// the forward and backward passes and a resumed run see the same mask. The step is the 1-based
// step the trainer feeds (LowerCtx::Step); the element index counts from the step's first
// example's position in the global batch (LowerCtx::ExampleOffset: 0 in one process, rank x
// batch in data-parallel training, so N ranks draw the masks one process would draw for the
// global batch). dropout is its own VJP (y = x * mask, dx = dy * mask).
// Attributes: ClipAttrs, DropoutAttrs.
#include "dsl/ops/common.h"

namespace kiln {
namespace {

using Halide::Expr;
using Halide::Func;
using Halide::Var;

absl::StatusOr<TypeAndShape> InferClip(const std::vector<const Node*>& in, const Attrs& at) {
  KILN_ASSIGN_OR_RETURN(const ClipAttrs* a, ops::AttrsAs<ClipAttrs>(at));
  if (in[0]->dtype != DType::kFloat) return absl::InvalidArgumentError("expected a float input");
  if (!(a->lo < a->hi)) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected bounds lo < hi, got lo ", a->lo, ", hi ", a->hi));
  }
  return TypeAndShape{DType::kFloat, in[0]->shape};
}

Lowered LowerClip(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  std::vector<Var> v = ctx.Vars(static_cast<int>(n.shape.size()));
  const ClipAttrs& a = n.attrs.Get<ClipAttrs>();
  Halide::Type t = ctx.float_type();
  Func f = ctx.NewFunc(n);
  ctx.Define(
      f, v,
      Halide::clamp(ctx.At(in[0], v), Halide::cast(t, Expr(a.lo)), Halide::cast(t, Expr(a.hi))));
  return {f};
}

// dx = dy where lo < x < hi, else 0
std::vector<Value> ClipVjp(const VjpArgs& a) {
  const ClipAttrs& c = a.attrs.Get<ClipAttrs>();
  return {a.dy * Step(a.x[0] - c.lo) * Step(c.hi - a.x[0])};
}

absl::StatusOr<TypeAndShape> InferDropout(const std::vector<const Node*>& in, const Attrs& at) {
  KILN_ASSIGN_OR_RETURN(const DropoutAttrs* a, ops::AttrsAs<DropoutAttrs>(at));
  if (in[0]->dtype != DType::kFloat) return absl::InvalidArgumentError("expected a float input");
  if (!(a->rate >= 0 && a->rate < 1)) {
    return absl::InvalidArgumentError(absl::StrCat("expected a rate in [0, 1), got ", a->rate));
  }
  return TypeAndShape{DType::kFloat, in[0]->shape};
}

Lowered LowerDropout(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  const DropoutAttrs& a = n.attrs.Get<DropoutAttrs>();
  std::vector<Var> v = ctx.Vars(static_cast<int>(n.shape.size()));
  Expr flat = 0;
  for (size_t i = 0; i < v.size(); ++i) flat = flat * static_cast<int>(n.shape[i]) + v[i];
  if (!n.shape.empty()) {
    const int per_example =
        static_cast<int>(NumElements(n.shape) / std::max<int64_t>(1, n.shape[0]));
    flat = flat + Halide::cast<int>(ctx.ExampleOffset()) * per_example;
  }
  Halide::Type u32 = Halide::UInt(32);
  Expr h =
      Halide::cast(u32, flat) * Halide::cast(u32, Expr(0x9E3779B1u)) +
      Halide::cast(u32, ctx.Step()) * Halide::cast(u32, Expr(0x85EBCA77u)) +
      Halide::cast(u32, Expr(static_cast<uint32_t>(a.seed))) * Halide::cast(u32, Expr(0xC2B2AE3Du));
  h = h ^ (h >> 16);
  h = h * Halide::cast(u32, Expr(0x7FEB352Du));
  h = h ^ (h >> 15);
  h = h * Halide::cast(u32, Expr(0x846CA68Bu));
  h = h ^ (h >> 16);
  Halide::Type t = ctx.float_type();
  Expr u = Halide::cast(t, h >> 8) * Halide::cast(t, Expr(1.0 / 16777216.0));  // [0, 1)
  Expr keep = u >= Halide::cast(t, Expr(a.rate));
  Func f = ctx.NewFunc(n);
  ctx.Define(f, v,
             Halide::select(keep, ctx.At(in[0], v) * Halide::cast(t, Expr(1.0 / (1.0 - a.rate))),
                            Halide::cast(t, 0)));
  return {f};
}

std::vector<Value> DropoutVjp(const VjpArgs& a) {
  return {a.dy.graph()->AddNode(OpKind::kDropout, {a.dy}, a.attrs)};
}

}  // namespace

extern const OpDef kClipOp = {"clip", Pattern::kElementwise, 1, InferClip, ClipVjp, LowerClip,
                              nullptr};
extern const OpDef kDropoutOp = {"dropout",  Pattern::kElementwise, 1,      InferDropout,
                                 DropoutVjp, LowerDropout,          nullptr};

}  // namespace kiln
