// A user-defined op (examples/softplus_op.cc) goes through the same checks as the built-in ones:
// shape rule and error, forward against a naive loop, schedule, finite-difference gradient; and it
// trains inside a compiled step.
#include <cmath>

#include "compiler/model.h"
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

}  // namespace
}  // namespace kiln::testing
