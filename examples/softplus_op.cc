#include "examples/softplus_op.h"

#include "absl/strings/str_cat.h"
#include "dsl/api.h"

namespace kiln::examples {
namespace {

// Shape rule: same shape, float only.
absl::StatusOr<TypeAndShape> Infer(const std::vector<const Node*>& in, const Attrs&) {
  if (in[0]->dtype != DType::kFloat) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected a float input, got ", DTypeName(in[0]->dtype)));
  }
  return TypeAndShape{DType::kFloat, in[0]->shape};
}

// d softplus(x) / dx = sigmoid(x), written in DSL ops.
std::vector<Value> Vjp(const VjpArgs& a) { return {a.dy * Sigmoid(a.x[0])}; }

// log(1 + exp(x)) computed as max(x, 0) + log(1 + exp(-|x|)) so large |x| cannot overflow.
Lowered Lower(LowerCtx& ctx, const Node& n, const std::vector<Halide::Func>& in) {
  Halide::Func f = ctx.NewFunc(n);
  std::vector<Halide::Var> v = ctx.Vars(static_cast<int>(n.shape.size()));
  Halide::Expr x = ctx.At(in[0], v);
  Halide::Expr zero = Halide::cast(ctx.float_type(), 0), one = Halide::cast(ctx.float_type(), 1);
  ctx.Define(f, v, Halide::max(x, zero) + Halide::log(one + Halide::exp(-Halide::abs(x))));
  return {f, {}};
}

}  // namespace

const OpDef& SoftplusOpDef() {
  // Elementwise: inlined into its consumers, so no schedule hook is needed.
  static const OpDef def = {"softplus", Pattern::kElementwise, 1, Infer, Vjp, Lower, nullptr};
  return def;
}

Value Softplus(Value x) {
  if (!x.valid()) return x;
  return x.graph()->AddCustomNode(SoftplusOpDef(), {x});
}

}  // namespace kiln::examples
