// Elementwise ops: broadcasting binary arithmetic, unary functions, comparisons and label helpers.
// All are inlined into their consumers (pattern kElementwise); none needs a schedule of its own.
#include <cmath>

#include "dsl/ops/common.h"

namespace kiln {
namespace {

using Halide::Expr;
using Halide::Func;
using Halide::Var;

absl::StatusOr<TypeAndShape> InferBinaryFloat(const std::vector<const Node*>& in, const Attrs&) {
  for (const Node* x : in) {
    if (x->dtype != DType::kFloat) {
      return absl::InvalidArgumentError(
          absl::StrCat("expected float inputs, got ", DTypeName(x->dtype), " for '", x->name, "'"));
    }
  }
  absl::StatusOr<Shape> s = ops::BroadcastShapes(in[0]->shape, in[1]->shape);
  if (!s.ok()) return s.status();
  return TypeAndShape{DType::kFloat, *s};
}

absl::StatusOr<TypeAndShape> InferUnaryFloat(const std::vector<const Node*>& in, const Attrs&) {
  if (in[0]->dtype != DType::kFloat) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected a float input, got ", DTypeName(in[0]->dtype)));
  }
  return TypeAndShape{DType::kFloat, in[0]->shape};
}

template <Expr (*F)(Expr, Expr)>
Lowered LowerBinary(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  Func f = ctx.NewFunc(n);
  std::vector<Var> v = ctx.Vars(static_cast<int>(n.shape.size()));
  // The input shapes are not stored on `in`; the node's inputs are re-read through the ctx.
  ctx.Define(f, v,
             F(ctx.Broadcast(in[0], ctx.input_shape(n, 0), v),
               ctx.Broadcast(in[1], ctx.input_shape(n, 1), v)));
  return {f};
}

template <Expr (*F)(const LowerCtx&, Expr)>
Lowered LowerUnary(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  Func f = ctx.NewFunc(n);
  std::vector<Var> v = ctx.Vars(static_cast<int>(n.shape.size()));
  ctx.Define(f, v, F(ctx, ctx.At(in[0], v)));
  return {f};
}

Expr AddE(Expr a, Expr b) { return a + b; }
Expr SubE(Expr a, Expr b) { return a - b; }
Expr MulE(Expr a, Expr b) { return a * b; }
Expr DivE(Expr a, Expr b) { return a / b; }
Expr EqualE(Expr a, Expr b) {
  return Halide::select(a == b, Halide::cast(a.type(), 1), Halide::cast(a.type(), 0));
}
Expr ReluE(const LowerCtx& c, Expr x) { return Halide::max(x, Halide::cast(c.float_type(), 0)); }
Expr SigmoidE(const LowerCtx& c, Expr x) {
  Expr one = Halide::cast(c.float_type(), 1);
  return one / (one + Halide::exp(-x));
}
// tanh in the step's float type. Halide 14 lowers a float32 tanh on x86 to one scalar libm call
// per lane (16 calls per AVX-512 vector), while its exp is a vectorized polynomial: the ViT's four
// tanh-GELUs took about 10 of its 35 ms training step so (2026-12-03). On CPUs, float32: for
// |x| >= 0.5, (1 - e) / (1 + e) with e = exp(-2|x|) <= 0.37 (no cancellation); below 0.5, the
// odd Taylor series to x^15 (the next term is under 1e-8 of tanh there). Float64 and GPUs keep
// Halide's tanh.
Expr TanhE(const LowerCtx& c, Expr x) {
  if (c.float_type().bits() != 32 || c.gpu()) return Halide::tanh(x);
  auto k = [](double v) { return Halide::cast(Halide::Float(32), Expr(v)); };
  Expr a = Halide::abs(x);
  Expr e = Halide::exp(Halide::max(k(-2) * a, k(-88)));  // within float32 exp's range
  Expr large = (k(1) - e) / (k(1) + e);
  Expr x2 = x * x;
  // tanh x = x (1 - x^2/3 + 2x^4/15 - 17x^6/315 + 62x^8/2835 - 1382x^10/155925
  //             + 21844x^12/6081075 - 929569x^14/638512875)
  const double c_[] = {1.0,         -1.0 / 3,         2.0 / 15,          -17.0 / 315,
                       62.0 / 2835, -1382.0 / 155925, 21844.0 / 6081075, -929569.0 / 638512875};
  Expr poly = k(c_[7]);
  for (int i = 6; i >= 0; --i) poly = poly * x2 + k(c_[i]);
  Expr y = Halide::select(a < k(0.5), x * poly, Halide::select(x < k(0), -large, large));
  return Halide::select(Halide::is_nan(x), x, y);
}
Expr ExpE(const LowerCtx&, Expr x) { return Halide::exp(x); }
Expr LogE(const LowerCtx&, Expr x) { return Halide::log(x); }
Expr SquareE(const LowerCtx&, Expr x) { return x * x; }
Expr SqrtE(const LowerCtx&, Expr x) { return Halide::sqrt(x); }
// erf in the step's float type. Halide's erf is float32 only, and the op table checks float64
// to 1e-12, so: float32 by Abramowitz and Stegun 7.1.26 (|error| < 1.5e-7, one exp), float64
// by the series erf(x) = 2/sqrt(pi) exp(-x^2) sum_n (2x^2)^n x / (2n+1)!! (all terms positive: no
// cancellation), 100 terms in Horner form over |x| <= 5.9, where it is within 2e-15 of erf; beyond
// that erf is +-1 to double precision.
Expr ErfE(const LowerCtx& c, Expr x) {
  Halide::Type t = c.float_type();
  auto k = [&](double v) { return Halide::cast(t, Expr(v)); };
  if (t.bits() == 32) {
    Expr a = Halide::abs(x);
    Expr u = k(1) / (k(1) + k(0.3275911) * a);
    Expr poly =
        ((((k(1.061405429) * u + k(-1.453152027)) * u + k(1.421413741)) * u + k(-0.284496736)) * u +
         k(0.254829592)) *
        u;
    Expr y = k(1) - poly * Halide::exp(-a * a);
    return Halide::select(x < k(0), -y, y);
  }
  Expr z = Halide::clamp(x, k(-5.9), k(5.9));
  Expr two_z2 = k(2) * z * z;
  Expr inner = k(1);
  for (int n = 99; n >= 1; --n) inner = k(1) + two_z2 * inner / k(2.0 * n + 1);
  return k(2 / std::sqrt(M_PI)) * Halide::exp(-z * z) * z * inner;
}
Expr StepE(const LowerCtx& c, Expr x) {
  return Halide::select(x > 0, Halide::cast(c.float_type(), 1), Halide::cast(c.float_type(), 0));
}

// d(a+b) = (dy, dy)
std::vector<Value> AddVjp(const VjpArgs& a) { return {a.dy, a.dy}; }
// d(a-b) = (dy, -dy)
std::vector<Value> SubVjp(const VjpArgs& a) { return {a.dy, -a.dy}; }
// d(a*b) = (dy b, dy a)
std::vector<Value> MulVjp(const VjpArgs& a) { return {a.dy * a.x[1], a.dy * a.x[0]}; }
// d(a/b) = (dy / b, -dy a / b^2 = -dy y / b)
std::vector<Value> DivVjp(const VjpArgs& a) { return {a.dy / a.x[1], -(a.dy * a.y) / a.x[1]}; }
// relu'(x) = step(x)
std::vector<Value> ReluVjp(const VjpArgs& a) { return {a.dy * Step(a.x[0])}; }
// sigmoid' = y (1 - y)
std::vector<Value> SigmoidVjp(const VjpArgs& a) { return {a.dy * a.y * (1.0 - a.y)}; }
// tanh' = 1 - y^2
std::vector<Value> TanhVjp(const VjpArgs& a) { return {a.dy * (1.0 - Square(a.y))}; }
// exp' = y
std::vector<Value> ExpVjp(const VjpArgs& a) { return {a.dy * a.y}; }
// log' = 1 / x
std::vector<Value> LogVjp(const VjpArgs& a) { return {a.dy / a.x[0]}; }
// (x^2)' = 2x
std::vector<Value> SquareVjp(const VjpArgs& a) { return {a.dy * (2.0 * a.x[0])}; }
// erf' = 2 / sqrt(pi) exp(-x^2)
std::vector<Value> ErfVjp(const VjpArgs& a) {
  return {a.dy * (2 / std::sqrt(M_PI)) * Exp(-Square(a.x[0]))};
}
// sqrt' = 1 / (2 y)
std::vector<Value> SqrtVjp(const VjpArgs& a) { return {a.dy * 0.5 / a.y}; }

absl::StatusOr<TypeAndShape> InferEqual(const std::vector<const Node*>& in, const Attrs&) {
  if (in[0]->dtype != in[1]->dtype) {
    return absl::InvalidArgumentError(absl::StrCat("expected inputs of one dtype, got ",
                                                   DTypeName(in[0]->dtype), " and ",
                                                   DTypeName(in[1]->dtype)));
  }
  absl::StatusOr<Shape> s = ops::BroadcastShapes(in[0]->shape, in[1]->shape);
  if (!s.ok()) return s.status();
  return TypeAndShape{in[0]->dtype, *s};
}

// round_to_int: RoundToIntAttrs, the bounds of the result.
absl::StatusOr<TypeAndShape> InferRoundToInt(const std::vector<const Node*>& in, const Attrs& at) {
  if (in[0]->dtype != DType::kFloat) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected a float input, got ", DTypeName(in[0]->dtype)));
  }
  KILN_ASSIGN_OR_RETURN(const RoundToIntAttrs* a, ops::AttrsAs<RoundToIntAttrs>(at));
  if (a->lo > a->hi) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected bounds lo <= hi, got lo ", a->lo, ", hi ", a->hi));
  }
  return TypeAndShape{DType::kInt32, in[0]->shape};
}

Lowered LowerRoundToInt(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  Func f = ctx.NewFunc(n);
  std::vector<Var> v = ctx.Vars(static_cast<int>(n.shape.size()));
  const RoundToIntAttrs& a = n.attrs.Get<RoundToIntAttrs>();
  Expr r = Halide::cast<int32_t>(Halide::round(ctx.At(in[0], v)));
  ctx.Define(f, v, Halide::clamp(r, static_cast<int>(a.lo), static_cast<int>(a.hi)));
  return {f};
}

// one_hot: int32 [..] -> float [.., depth] (OneHotAttrs); labels outside [0, depth) give an
// all-zero row.
absl::StatusOr<TypeAndShape> InferOneHot(const std::vector<const Node*>& in, const Attrs& at) {
  if (in[0]->dtype != DType::kInt32) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected int32 labels, got ", DTypeName(in[0]->dtype)));
  }
  KILN_ASSIGN_OR_RETURN(const OneHotAttrs* a, ops::AttrsAs<OneHotAttrs>(at));
  if (a->depth <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("expected a positive depth, got ", a->depth));
  }
  Shape s = in[0]->shape;
  s.push_back(a->depth);
  return TypeAndShape{DType::kFloat, s};
}

Lowered LowerOneHot(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  Func f = ctx.NewFunc(n);
  std::vector<Var> v = ctx.Vars(static_cast<int>(n.shape.size()));
  std::vector<Var> lead(v.begin(), v.end() - 1);
  Expr hot = ctx.At(in[0], lead) == v.back();
  ctx.Define(
      f, v,
      Halide::select(hot, Halide::cast(ctx.float_type(), 1), Halide::cast(ctx.float_type(), 0)));
  return {f};
}

// to_float: int32 -> float (labels as regression targets). Integers carry no gradient.
absl::StatusOr<TypeAndShape> InferToFloat(const std::vector<const Node*>& in, const Attrs&) {
  if (in[0]->dtype != DType::kInt32 && in[0]->dtype != DType::kUInt8) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected an int32 or uint8 input, got ", DTypeName(in[0]->dtype)));
  }
  return TypeAndShape{DType::kFloat, in[0]->shape};
}

Expr ToFloatE(const LowerCtx& c, Expr x) { return Halide::cast(c.float_type(), x); }

// Constant folding: the op on the values of constant inputs.
double FoldAdd(const std::vector<double>& x, const Attrs&) { return x[0] + x[1]; }
double FoldSub(const std::vector<double>& x, const Attrs&) { return x[0] - x[1]; }
double FoldMul(const std::vector<double>& x, const Attrs&) { return x[0] * x[1]; }
double FoldDiv(const std::vector<double>& x, const Attrs&) { return x[0] / x[1]; }
double FoldRelu(const std::vector<double>& x, const Attrs&) { return x[0] > 0 ? x[0] : 0; }
double FoldExp(const std::vector<double>& x, const Attrs&) { return std::exp(x[0]); }
double FoldLog(const std::vector<double>& x, const Attrs&) { return std::log(x[0]); }
double FoldSquare(const std::vector<double>& x, const Attrs&) { return x[0] * x[0]; }
double FoldSqrt(const std::vector<double>& x, const Attrs&) { return std::sqrt(x[0]); }
double FoldErf(const std::vector<double>& x, const Attrs&) { return std::erf(x[0]); }

}  // namespace

extern const OpDef kAddOp = {"add",  Pattern::kElementwise, 2,       InferBinaryFloat,
                             AddVjp, LowerBinary<AddE>,     nullptr, FoldAdd};
extern const OpDef kSubOp = {"sub",  Pattern::kElementwise, 2,       InferBinaryFloat,
                             SubVjp, LowerBinary<SubE>,     nullptr, FoldSub};
extern const OpDef kMulOp = {"mul",  Pattern::kElementwise, 2,       InferBinaryFloat,
                             MulVjp, LowerBinary<MulE>,     nullptr, FoldMul};
extern const OpDef kDivOp = {"div",  Pattern::kElementwise, 2,       InferBinaryFloat,
                             DivVjp, LowerBinary<DivE>,     nullptr, FoldDiv};
extern const OpDef kReluOp = {"relu",  Pattern::kElementwise, 1,       InferUnaryFloat,
                              ReluVjp, LowerUnary<ReluE>,     nullptr, FoldRelu};
extern const OpDef kSigmoidOp = {"sigmoid",  Pattern::kElementwise, 1,      InferUnaryFloat,
                                 SigmoidVjp, LowerUnary<SigmoidE>,  nullptr};
extern const OpDef kTanhOp = {"tanh",  Pattern::kElementwise, 1,      InferUnaryFloat,
                              TanhVjp, LowerUnary<TanhE>,     nullptr};
extern const OpDef kExpOp = {"exp",  Pattern::kElementwise, 1,       InferUnaryFloat,
                             ExpVjp, LowerUnary<ExpE>,      nullptr, FoldExp};
extern const OpDef kLogOp = {"log",  Pattern::kElementwise, 1,       InferUnaryFloat,
                             LogVjp, LowerUnary<LogE>,      nullptr, FoldLog};
extern const OpDef kSquareOp = {"square",  Pattern::kElementwise, 1,       InferUnaryFloat,
                                SquareVjp, LowerUnary<SquareE>,   nullptr, FoldSquare};
extern const OpDef kSqrtOp = {"sqrt",  Pattern::kElementwise, 1,       InferUnaryFloat,
                              SqrtVjp, LowerUnary<SqrtE>,     nullptr, FoldSqrt};
extern const OpDef kErfOp = {"erf",  Pattern::kElementwise, 1,       InferUnaryFloat,
                             ErfVjp, LowerUnary<ErfE>,      nullptr, FoldErf};
// A Heaviside step has no useful gradient: a path from a parameter through it is an error.
extern const OpDef kStepOp = {"step",  Pattern::kElementwise, 1,      InferUnaryFloat,
                              nullptr, LowerUnary<StepE>,     nullptr};
extern const OpDef kEqualOp = {"equal", Pattern::kElementwise, 2,      InferEqual,
                               nullptr, LowerBinary<EqualE>,   nullptr};
extern const OpDef kRoundToIntOp = {"round_to_int", Pattern::kElementwise, 1,      InferRoundToInt,
                                    nullptr,        LowerRoundToInt,       nullptr};
extern const OpDef kOneHotOp = {"one_hot", Pattern::kElementwise, 1,      InferOneHot,
                                nullptr,   LowerOneHot,           nullptr};

extern const OpDef kToFloatOp = {"to_float", Pattern::kElementwise, 1,      InferToFloat,
                                 nullptr,    LowerUnary<ToFloatE>,  nullptr};

}  // namespace kiln
