// Every op case of op_cases.cc: shape rule, forward, schedule and gradient; plus the coverage test
// (every primitive has a case, every differentiable one a gradient check) and the mutation test
// (a wrong VJP injected here is caught).
#include <cstdio>
#include <fstream>
#include <set>

#include "tests/ops/op_check.h"

namespace kiln::testing {
namespace {

class OpTest : public ::testing::TestWithParam<OpCase> {};

TEST_P(OpTest, ShapeRule) { EXPECT_TRUE(CheckShapeRule(GetParam())); }
TEST_P(OpTest, ForwardMatchesNaiveReference) { EXPECT_TRUE(CheckForward(GetParam())); }
TEST_P(OpTest, HandScheduleMatchesPlainSchedule) {
  EXPECT_TRUE(CheckScheduleMatchesPlain(GetParam()));
}
TEST_P(OpTest, GradientMatchesFiniteDifferences) {
  const OpCase& c = GetParam();
  if (c.no_gradient.empty()) {
    EXPECT_TRUE(CheckGradient(c));
    return;
  }
  // A non-differentiable op with a float output must refuse to be differentiated, by name.
  Graph g;
  std::vector<Value> xs;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    xs.push_back(g.Input("x" + std::to_string(i), c.inputs[i].shape, c.inputs[i].dtype));
  }
  Value y = c.build(xs);
  if (y.dtype() != DType::kFloat || xs[0].dtype() != DType::kFloat) {
    GTEST_SKIP() << "integer input or output, no gradient: " << c.no_gradient;
  }
  auto grads = Gradients(Sum(y), {xs[0]});
  ASSERT_EQ(grads.status().code(), absl::StatusCode::kUnimplemented) << grads.status();
  EXPECT_NE(grads.status().message().find("has no gradient"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(All, OpTest, ::testing::ValuesIn(AllOpCases()),
                         [](const ::testing::TestParamInfo<OpCase>& info) {
                           return info.param.name;
                         });

// The cases whose graph holds an op whose lowering reads the layout (convolutions, pooling and
// their backward ops), run again with the batch-inner layout forced (compiler/layout.h): the
// forward pass against the naive reference and the gradient by finite differences. Whatever the
// batch (the cases' batches of 1-3 give 1-2 lanes; cnn_block_batch32 is planned so by default).
std::vector<OpCase> LayoutCases() {
  std::vector<OpCase> out;
  for (const OpCase& c : AllOpCases()) {
    if (ReadsLayout(c)) out.push_back(c);
  }
  return out;
}

class BatchInnerLayoutTest : public ::testing::TestWithParam<OpCase> {};

TEST_P(BatchInnerLayoutTest, ForwardAndGradientMatch) {
  const OpCase& c = GetParam();
  EXPECT_TRUE(CheckForward(c, LayoutChoice::kBatchInner));
  if (c.no_gradient.empty()) {
    EXPECT_TRUE(CheckGradient(c, nullptr, LayoutChoice::kBatchInner));
  }
}

INSTANTIATE_TEST_SUITE_P(All, BatchInnerLayoutTest, ::testing::ValuesIn(LayoutCases()),
                         [](const ::testing::TestParamInfo<OpCase>& info) {
                           return info.param.name;
                         });

TEST(BatchInnerLayoutTest, CoversEveryOpThatReadsTheLayout) {
  std::set<OpKind> covered;
  for (const OpCase& c : LayoutCases()) covered.insert(c.covers.begin(), c.covers.end());
  for (OpKind op : {OpKind::kConv2D, OpKind::kConv2DBackwardInput, OpKind::kConv2DBackwardWeight,
                    OpKind::kMaxPool2DArgmax, OpKind::kMaxPool2DGather, OpKind::kMaxPool2DScatter,
                    OpKind::kAvgPool2D, OpKind::kAvgPool2DBackward}) {
    EXPECT_TRUE(covered.count(op)) << GetOpDef(op).name;
  }
}

// Source ops are arguments, not computations: what a case could check for them is what every
// case already does (feeding inputs). Listed here, with the reason, instead of a silent skip.
const std::map<OpKind, std::string>& SourceOps() {
  static const std::map<OpKind, std::string> m = {
      {OpKind::kInput, "every case feeds its data through input nodes"},
      {OpKind::kBuffer,
       "a source like input; batch_norm_train_mode and workflow_test use buffers"}};
  return m;
}

TEST(OpCoverageTest, EveryPrimitiveHasACaseAndDifferentiableOnesAGradientCheck) {
  std::set<OpKind> covered, gradient_checked;
  for (const OpCase& c : AllOpCases()) {
    for (OpKind op : c.covers) {
      covered.insert(op);
      if (c.no_gradient.empty()) gradient_checked.insert(op);
    }
  }
  for (int i = 0; i < kNumOps; ++i) {
    OpKind op = static_cast<OpKind>(i);
    if (SourceOps().count(op)) continue;
    EXPECT_TRUE(covered.count(op)) << "op '" << OpName(op) << "' has no test case";
    if (GetOpDef(op).vjp != nullptr && GetOpDef(op).pattern != Pattern::kSource) {
      EXPECT_TRUE(gradient_checked.count(op))
          << "differentiable op '" << OpName(op) << "' has no gradient check";
    }
  }
}

TEST(OpCoverageTest, CaseNamesAreUniqueAndEveryCaseHasAnErrorOrIsCompositeOrShared) {
  std::set<std::string> names;
  for (const OpCase& c : AllOpCases()) {
    EXPECT_TRUE(names.insert(c.name).second) << "duplicate case " << c.name;
    EXPECT_FALSE(c.covers.empty()) << c.name;
  }
  // Each primitive's shape rule has at least one error case.
  std::set<OpKind> with_error;
  for (const OpCase& c : AllOpCases()) {
    if (c.bad) with_error.insert(c.covers.front());
  }
  for (OpKind op :
       {OpKind::kAdd, OpKind::kSub, OpKind::kRelu, OpKind::kEqual, OpKind::kRoundToInt,
        OpKind::kOneHot, OpKind::kToFloat, OpKind::kReshape, OpKind::kTranspose,
        OpKind::kBroadcastTo, OpKind::kSum, OpKind::kMax, OpKind::kMatMul, OpKind::kConstant}) {
    EXPECT_TRUE(with_error.count(op)) << "no shape-error case for " << OpName(op);
  }
}

// A case that sanitizer builds compile without Halide's asan feature says why and names the
// standalone program showing that the fault is Halide's; the test log lists them.
TEST(OpCoverageTest, CasesWithoutHalideAsanNameTheirStandaloneReproducer) {
  for (const OpCase& c : AllOpCases()) {
    const std::string& why = c.without_halide_asan;
    if (why.empty()) continue;
    std::printf("%s: compiled without Halide's asan feature in sanitizer builds: %s\n",
                c.name.c_str(), why.c_str());
    const size_t at = why.find("tests/halide/"), end = why.find(".cc", at);
    ASSERT_TRUE(at != std::string::npos && end != std::string::npos) << c.name << ": " << why;
    const std::string path = why.substr(at, end + 3 - at);
    EXPECT_TRUE(std::ifstream(std::string(KILN_TEST_SOURCE_DIR) + "/" + path).good()) << path;
  }
}

const OpCase& Case(const std::string& name) {
  for (const OpCase& c : AllOpCases()) {
    if (c.name == name) return c;
  }
  ADD_FAILURE() << "no case " << name;
  return AllOpCases().front();
}

// d(a*b) written wrongly as (dy * b, dy * b): the checker must reject it.
std::vector<Value> WrongMulVjp(const VjpArgs& a) { return {a.dy * a.x[1], a.dy * a.x[1]}; }
// relu' written as 1 everywhere.
std::vector<Value> WrongReluVjp(const VjpArgs& a) { return {a.dy}; }
// d(matmul) with the transposes swapped on one side: dB = dC^T A would not even match the shape,
// so use dA = dC B^T scaled by 2.
std::vector<Value> WrongMatMulVjp(const VjpArgs& a) {
  return {MatMul(a.dy, Transpose(a.x[1])) * 2.0, MatMul(Transpose(a.x[0]), a.dy)};
}

TEST(GradientCheckerMutationTest, CatchesAWrongMulRule) {
  VjpOverrides o = {{OpKind::kMul, WrongMulVjp}};
  EXPECT_TRUE(CheckGradient(Case("mul_broadcast_both")));
  EXPECT_FALSE(CheckGradient(Case("mul_broadcast_both"), &o));
}

TEST(GradientCheckerMutationTest, CatchesAWrongReluRule) {
  VjpOverrides o = {{OpKind::kRelu, WrongReluVjp}};
  EXPECT_FALSE(CheckGradient(Case("relu"), &o));
}

TEST(GradientCheckerMutationTest, CatchesAWrongMatMulRule) {
  VjpOverrides o = {{OpKind::kMatMul, WrongMatMulVjp}};
  EXPECT_FALSE(CheckGradient(Case("matmul_small"), &o));
}

}  // namespace
}  // namespace kiln::testing
