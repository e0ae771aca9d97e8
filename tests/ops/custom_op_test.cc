// A user-defined op (examples/softplus_op.cc) goes through the same checks as the built-in ones:
// shape rule and error, forward against a naive loop, schedule, finite-difference gradient; and it
// trains inside a compiled step. A second custom op carries a named attribute (CustomAttrs) and a
// fold hook.
#include <cmath>

#include "compiler/model.h"
#include "compiler/passes.h"
#include "examples/softplus_op.h"
#include "tests/ops/op_check.h"

namespace kiln::testing {
namespace {

OpCase SoftplusCase() {
  return {"softplus",
          {OpKind::kCustom},
          {{{3, 7}, DType::kFloat, -30, 30}},
          [](const std::vector<Value>& x) { return examples::Softplus(x[0]); },
          [](const std::vector<Nd>& x) {
            return Map(x[0], [](double a) { return std::log1p(std::exp(a)); });
          },
          "",
          [](Graph& g) { return examples::Softplus(g.Input("l", {3}, DType::kInt32)); },
          "expected a float input"};
}

TEST(CustomOpTest, ShapeRuleAndError) { EXPECT_TRUE(CheckShapeRule(SoftplusCase())); }
TEST(CustomOpTest, ForwardMatchesNaiveReference) { EXPECT_TRUE(CheckForward(SoftplusCase())); }
TEST(CustomOpTest, ScheduleMatchesPlain) { EXPECT_TRUE(CheckScheduleMatchesPlain(SoftplusCase())); }
TEST(CustomOpTest, GradientMatchesFiniteDifferences) { EXPECT_TRUE(CheckGradient(SoftplusCase())); }

TEST(CustomOpTest, NamedInDumpsAndTrainsInAStep) {
  Graph g;
  Value x = g.Input("x", {4, 3});
  Value w = g.Parameter("w", {3, 2}, Initializer::Constant(0.1));
  ModelDef m;
  m.inputs = {x};
  m.loss = Mean(examples::Softplus(MatMul(x, w)));
  EXPECT_NE(g.Dump().find("= softplus(%"), std::string::npos) << g.Dump();
  auto step = CompileTrainStep(g, m, Sgd(0.1), {});
  ASSERT_TRUE(step.ok()) << step.status();
}

// scale: y = factor * x, the factor a named attribute of the node.
absl::StatusOr<TypeAndShape> InferScale(const std::vector<const Node*>& in, const Attrs& at) {
  const CustomAttrs* a = at.Find<CustomAttrs>();
  if (a == nullptr || a->reals.count("factor") == 0) {
    return absl::InvalidArgumentError("expected a real attribute 'factor'");
  }
  return TypeAndShape{in[0]->dtype, in[0]->shape};
}

double Factor(const Attrs& at) { return at.Get<CustomAttrs>().reals.at("factor"); }

// dx = factor * dy
std::vector<Value> ScaleVjp(const VjpArgs& a) { return {a.dy * Factor(a.attrs)}; }

Lowered LowerScale(LowerCtx& ctx, const Node& n, const std::vector<Halide::Func>& in) {
  Halide::Func f = ctx.NewFunc(n);
  std::vector<Halide::Var> v = ctx.Vars(static_cast<int>(n.shape.size()));
  ctx.Define(f, v,
             ctx.At(in[0], v) * Halide::cast(ctx.float_type(), Halide::Expr(Factor(n.attrs))));
  return {f};
}

double FoldScale(const std::vector<double>& x, const Attrs& at) { return x[0] * Factor(at); }

const OpDef& ScaleOpDef() {
  static const OpDef def = {
      "scale", Pattern::kElementwise, 1, InferScale, ScaleVjp, LowerScale, nullptr, FoldScale};
  return def;
}

Value Scale(Value x, double factor) {
  CustomAttrs a;
  a.reals["factor"] = factor;
  return x.graph()->AddCustomNode(ScaleOpDef(), {x}, Attrs{a});
}

OpCase ScaleCase() {
  return {"scale",
          {OpKind::kCustom},
          {F({3, 4})},
          [](const std::vector<Value>& x) { return Scale(x[0], 2.5); },
          [](const std::vector<Nd>& x) { return Map(x[0], [](double a) { return 2.5 * a; }); },
          "",
          [](Graph& g) { return g.AddCustomNode(ScaleOpDef(), {g.Input("x", {3})}); },
          "expected a real attribute 'factor'"};
}

TEST(CustomOpTest, NamedAttributeReachesShapeRuleLoweringAndVjp) {
  EXPECT_TRUE(CheckShapeRule(ScaleCase()));
  EXPECT_TRUE(CheckForward(ScaleCase()));
  EXPECT_TRUE(CheckGradient(ScaleCase()));
}

std::string FingerprintOfScale(double factor) {
  Graph g;
  return g.Fingerprint({Scale(g.Input("x", {3}), factor).id()});
}

TEST(CustomOpTest, NamedAttributeSeparatesNodesAndFeedsTheFoldHook) {
  Graph g;
  Value x = g.Input("x", {3});
  Value y = Sum(Scale(x, 2)) + Sum(Scale(x, 3)) + Sum(Scale(x, 2));
  std::vector<int> roots = {y.id()};
  EXPECT_EQ(EliminateCommonSubexpressions(g, roots), 2);  // the second factor-2 scale and its sum
  EXPECT_NE(g.Dump(roots).find("= scale(%0) : float[3] factor=3"), std::string::npos)
      << g.Dump(roots);
  EXPECT_NE(FingerprintOfScale(2), FingerprintOfScale(3));
  Value c = Scale(g.Constant(4, {3}), 0.5);
  roots = {c.id()};
  EXPECT_EQ(FoldConstants(g, roots), 1);
  EXPECT_EQ(g.node(c.id()).attrs.Get<ConstantAttrs>().value, 2.0);
}

}  // namespace
}  // namespace kiln::testing
