// Autodiff, passes, step compilation and the trainer over compiled steps (small synthetic data).
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <set>
#include <sstream>

#include "compiler/autodiff.h"
#include "compiler/layout.h"
#include "compiler/lower.h"
#include "compiler/model.h"
#include "compiler/passes.h"
#include "dsl/api.h"
#include "gtest/gtest.h"
#include "runtime/dataset.h"
#include "runtime/safetensors.h"
#include "runtime/segmented_step.h"
#include "runtime/trainer.h"

namespace kiln {
namespace {

TEST(AutodiffTest, NonDifferentiablePathToAParameterIsUnimplementedNamingTheNode) {
  Graph g;
  Value x = g.Input("x", {4});
  Value w = g.Parameter("w", {4}, Initializer::Zeros());
  Value loss = Sum(Step(w) * x);
  auto grads = Gradients(loss, {w});
  ASSERT_EQ(grads.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(grads.status().message().find("op step (node 'step_"), std::string::npos)
      << grads.status();
}

TEST(AutodiffTest, LossMustBeAFloatScalar) {
  Graph g;
  Value w = g.Parameter("w", {4}, Initializer::Zeros());
  auto grads = Gradients(Relu(w), {w});
  ASSERT_EQ(grads.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(grads.status().message().find("must be a float scalar, got float[4]"),
            std::string::npos)
      << grads.status();
}

TEST(AutodiffTest, ParameterThatDoesNotAffectTheLossIsAnError) {
  Graph g;
  Value w = g.Parameter("w", {4}, Initializer::Zeros());
  Value unused = g.Parameter("unused", {4}, Initializer::Zeros());
  auto grads = Gradients(Sum(w), {w, unused});
  ASSERT_FALSE(grads.ok());
  EXPECT_NE(grads.status().message().find("'unused' does not affect the loss"), std::string::npos);
}

TEST(AutodiffTest, IntegerValuesHaveNoGradient) {
  Graph g;
  Value labels = g.Input("labels", {4}, DType::kInt32);
  auto grads = Gradients(Sum(ToFloat(labels)), {labels});
  ASSERT_EQ(grads.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(grads.status().message().find("'labels' of dtype int32"), std::string::npos);
}

TEST(AutodiffTest, GradientsOfBroadcastInputsTakeTheInputShape) {
  Graph g;
  Value x = g.Input("x", {5, 3});
  Value b = g.Parameter("b", {3}, Initializer::Zeros());
  Value c = g.Parameter("c", {5, 1}, Initializer::Zeros());
  Value s = g.Parameter("s", {}, Initializer::Zeros());
  auto grads = Gradients(Sum((x + b) * c * s), {b, c, s});
  ASSERT_TRUE(grads.ok()) << grads.status();
  EXPECT_EQ((*grads)[0].shape(), (Shape{3}));
  EXPECT_EQ((*grads)[1].shape(), (Shape{5, 1}));
  EXPECT_EQ((*grads)[2].shape(), (Shape{}));
}

TEST(PassesTest, CseMergesIdenticalNodesAndRedirectsRoots) {
  Graph g;
  Value x = g.Input("x", {3});
  Value a = Exp(x);
  Value b = Exp(x);
  Value y = a + b;
  std::vector<int> roots = {y.id(), b.id()};
  EXPECT_EQ(EliminateCommonSubexpressions(g, roots), 1);
  EXPECT_EQ(g.node(y.id()).inputs, (std::vector<int>{a.id(), a.id()}));
  EXPECT_EQ(roots[1], a.id());
}

TEST(PassesTest, FoldsConstantArithmetic) {
  Graph g;
  Value x = g.Input("x", {3});
  Value k = g.Constant(2.0) * g.Constant(3.0) + 1.0;
  Value y = x * k;
  std::vector<int> roots = {y.id()};
  EXPECT_GE(FoldConstants(g, roots), 2);
  const Node& folded = g.node(k.id());
  EXPECT_EQ(folded.op, OpKind::kConstant);
  EXPECT_EQ(folded.attrs.Get<ConstantAttrs>().value, 7.0);
  EXPECT_GT(CountDeadNodes(g, roots), 0);
}

// sum(conv2d(x, w, stride_w = a)) + sum(conv2d(x, w, stride_w = b)): over 5 columns with a 1x1
// kernel, strides 3 and 4 give the same output shape, so only the attribute tells them apart.
Value TwoConvolutions(Graph& g, int64_t a, int64_t b) {
  Value x = g.Input("x", {1, 1, 4, 5});
  Value w = g.Input("w", {1, 1, 1, 1});
  ConvParams pa, pb;
  pa.stride_w = a;
  pb.stride_w = b;
  return Sum(Conv2d(x, w, pa)) + Sum(Conv2d(x, w, pb));
}

// The same with average pooling (kernel 3, stride 3, over 6 x 6): padding 0 and 1 give the same
// output shape.
Value TwoPoolings(Graph& g, int64_t a, int64_t b) {
  Value x = g.Input("x", {1, 1, 6, 6});
  return Sum(AvgPool2d(x, 3, 3, a)) + Sum(AvgPool2d(x, 3, 3, b));
}

using TwoOps = Value (*)(Graph&, int64_t, int64_t);

int CseMerges(TwoOps build, int64_t a, int64_t b) {
  Graph g;
  std::vector<int> roots = {build(g, a, b).id()};
  return EliminateCommonSubexpressions(g, roots);
}

std::string FingerprintOf(TwoOps build, int64_t a, int64_t b) {
  Graph g;
  return g.Fingerprint({build(g, a, b).id()});
}

TEST(PassesTest, ConvolutionsDifferingOnlyInStrideWAreNeitherMergedNorFingerprintedAlike) {
  EXPECT_EQ(CseMerges(TwoConvolutions, 3, 3), 2);  // the convolution and its sum
  EXPECT_EQ(CseMerges(TwoConvolutions, 3, 4), 0);
  EXPECT_EQ(FingerprintOf(TwoConvolutions, 3, 4), FingerprintOf(TwoConvolutions, 3, 4));
  EXPECT_NE(FingerprintOf(TwoConvolutions, 3, 4), FingerprintOf(TwoConvolutions, 4, 4));
}

TEST(PassesTest, PoolingsDifferingOnlyInPaddingAreNeitherMergedNorFingerprintedAlike) {
  EXPECT_EQ(CseMerges(TwoPoolings, 1, 1), 2);  // the pooling and its sum
  EXPECT_EQ(CseMerges(TwoPoolings, 0, 1), 0);
  EXPECT_NE(FingerprintOf(TwoPoolings, 0, 1), FingerprintOf(TwoPoolings, 1, 1));
  Graph g;
  Value y = TwoPoolings(g, 0, 1);
  EXPECT_NE(g.Dump({y.id()}).find("avg_pool2d(%0) : float[1, 1, 2, 2] kernel=3 stride=3 padding=1"),
            std::string::npos)
      << g.Dump({y.id()});
}

TEST(PassesTest, FoldingAsksTheOpsFoldHook) {
  Graph g;
  Value x = g.Input("x", {2});
  Value folded = Reshape(Sqrt(g.Constant(9.0, {2})), {2, 1});
  Value kept = Sum(g.Constant(2.0, {2}));  // sum has no fold hook
  Value y = Sum(x * Reshape(folded, {2})) + kept;
  std::vector<int> roots = {y.id()};
  FoldConstants(g, roots);
  ASSERT_EQ(g.node(folded.id()).op, OpKind::kConstant);
  EXPECT_EQ(g.node(folded.id()).attrs.Get<ConstantAttrs>().value, 3.0);
  EXPECT_EQ(g.node(folded.id()).attrs.Get<ConstantAttrs>().shape, (Shape{2, 1}));
  EXPECT_EQ(g.node(kept.id()).op, OpKind::kSum);
}

// A linear regression small enough to differentiate by hand.
ModelDef TinyRegression(Graph& g, int64_t batch) {
  Value x = g.Input("x", {batch, 3});
  Value t = g.Input("t", {batch}, DType::kInt32);
  Linear fc(g, "fc", 3, 1, {true, Initializer::Constant(0.5), Initializer::Constant(0.25)});
  Value pred = fc(x);
  ModelDef m;
  m.inputs = {x, t};
  m.loss = Mean(SquareErrorCost(pred, Reshape(ToFloat(t), {batch, 1})));
  m.eval_outputs = {{"prediction", RoundToInt(Reshape(pred, {batch}), 0, 9)}};
  return m;
}

TEST(CompileTest, TrainStepSignatureListsArgumentsByRole) {
  Graph g;
  auto step = CompileTrainStep(g, TinyRegression(g, 4), Sgd(0.1), {});
  ASSERT_TRUE(step.ok()) << step.status();
  const Signature& sig = (*step)->signature();
  ASSERT_EQ(sig.inputs.size(), 5u);
  EXPECT_EQ(sig.inputs[0].name, "x");
  EXPECT_EQ(sig.inputs[1].type, ScalarType::kI32);
  EXPECT_EQ(sig.inputs[2].role, ArgRole::kHyper);
  EXPECT_EQ(sig.inputs[2].name, "lr");
  EXPECT_EQ(sig.inputs[2].init.a, 0.1);
  EXPECT_EQ(sig.inputs[3].name, "fc.weight");
  EXPECT_EQ(sig.inputs[3].role, ArgRole::kParam);
  ASSERT_EQ(sig.outputs.size(), 3u);
  EXPECT_EQ(sig.outputs[0].role, ArgRole::kLoss);
  EXPECT_EQ(sig.outputs[1].role, ArgRole::kNewParam);
  EXPECT_EQ(sig.outputs[1].name, "fc.weight");
  EXPECT_EQ(sig.outputs[1].shape, (Shape{3, 1}));
  EXPECT_GT((*step)->compile_seconds(), 0);
}

TEST(CompileTest, OneSgdStepMatchesTheUpdateComputedByHand) {
  Graph g;
  CompileOptions o;
  o.float64 = true;
  auto step = CompileTrainStep(g, TinyRegression(g, 2), Sgd(0.1), o);
  ASSERT_TRUE(step.ok()) << step.status();
  Tensor x(ScalarType::kF64, {2, 3}), t(ScalarType::kI32, {2}), lr(ScalarType::kF64, {});
  Tensor w(ScalarType::kF64, {3, 1}), b(ScalarType::kF64, {1});
  Tensor loss(ScalarType::kF64, {}), w2(ScalarType::kF64, {3, 1}), b2(ScalarType::kF64, {1});
  double xs[6] = {1, 2, 3, -1, 0.5, 2};
  std::memcpy(x.raw(), xs, sizeof(xs));
  t.data<int32_t>()[0] = 4;
  t.data<int32_t>()[1] = 1;
  lr.data<double>()[0] = 0.1;
  double wv[3] = {0.5, -0.25, 1.0};
  std::memcpy(w.raw(), wv, sizeof(wv));
  b.data<double>()[0] = 0.25;
  ASSERT_TRUE(
      (*step)
          ->Run({x.ref(), t.ref(), lr.ref(), w.ref(), b.ref()}, {loss.ref(), w2.ref(), b2.ref()})
          .ok());
  // By hand: r_i = x_i . w + b - t_i; loss = mean r^2; dw = 2/B sum r_i x_i; db = 2/B sum r_i.
  double r[2], want_loss = 0, dw[3] = {0, 0, 0}, db = 0;
  for (int i = 0; i < 2; ++i) {
    r[i] = xs[3 * i] * wv[0] + xs[3 * i + 1] * wv[1] + xs[3 * i + 2] * wv[2] + 0.25 -
           t.data<int32_t>()[i];
    want_loss += r[i] * r[i] / 2;
    for (int k = 0; k < 3; ++k) dw[k] += r[i] * xs[3 * i + k];
    db += r[i];
  }
  EXPECT_NEAR(loss.data<double>()[0], want_loss, 1e-12);
  for (int k = 0; k < 3; ++k) EXPECT_NEAR(w2.data<double>()[k], wv[k] - 0.1 * dw[k], 1e-12);
  EXPECT_NEAR(b2.data<double>()[0], 0.25 - 0.1 * db, 1e-12);
}

TEST(CompileTest, RunRejectsAnInputThatAliasesAnOutput) {
  Graph g;
  auto step = CompileTrainStep(g, TinyRegression(g, 2), Sgd(0.1), {});
  ASSERT_TRUE(step.ok()) << step.status();
  Tensor x(ScalarType::kF32, {2, 3}), t(ScalarType::kI32, {2}), lr(ScalarType::kF32, {});
  Tensor w(ScalarType::kF32, {3, 1}), b(ScalarType::kF32, {1}), loss(ScalarType::kF32, {});
  Tensor b2(ScalarType::kF32, {1});
  absl::Status s =
      (*step)->Run({x.ref(), t.ref(), lr.ref(), w.ref(), b.ref()}, {loss.ref(), w.ref(), b2.ref()});
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("input 'fc.weight' overlaps output 'fc.weight'"), std::string::npos)
      << s;
  Tensor wrong(ScalarType::kF32, {3, 2});
  s = (*step)->Run({x.ref(), t.ref(), lr.ref(), wrong.ref(), b.ref()},
                   {loss.ref(), w.ref(), b2.ref()});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("expected F32[3, 1], got F32[3, 2]"), std::string::npos) << s;
}

// Attention's Q K^T and every transpose its gradients take (dA = dC B^T, dB = A^T dC, the heads'
// views) are read in place by the batched matmuls: the training step's lowered statement has no
// loop nest producing a transpose node, while each matmul has its own.
// Whether a loop nest produces `func` in a lowered statement (Halide appends "$<k>" to a Func it
// computes inside another's loops).
bool Produces(const std::string& stmt, const std::string& func) {
  const std::string key = "produce " + func;
  for (size_t at = stmt.find(key); at != std::string::npos; at = stmt.find(key, at + 1)) {
    const char next = at + key.size() < stmt.size() ? stmt[at + key.size()] : '\0';
    if (next == ' ' || next == '$') return true;
  }
  return false;
}

// The Halide name of node `n`'s Func (`suffix`: a helper's role), as LowerCtx::NewFunc makes it.
std::string FuncName(const Node& n, const std::string& suffix = "") {
  std::string name = n.name + (suffix.empty() ? "" : "_" + suffix);
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name + "_n" + std::to_string(n.id);
}

// The lowered statement CompileOptions::stmt_path made.
std::string ReadStmt(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(CompileTest, TransposesFeedingBatchedMatMulsAreNotMaterialized) {
  Graph g;
  Value x = g.Input("x", {2, 5, 8});
  MultiHeadAttention attention(g, "attn", 8, 2);
  ModelDef m;
  m.inputs = {x};
  m.loss = Mean(Square(attention(x)));
  CompileOptions o;
  o.stmt_path = ::testing::TempDir() + "/attention_step.stmt";
  auto step = CompileTrainStep(g, m, Sgd(0.1), o);
  ASSERT_TRUE(step.ok()) << step.status();
  const std::string stmt = ReadStmt(o.stmt_path);
  int transposes = 0, matmuls = 0;
  for (int id = 0; id < g.size(); ++id) {
    const Node& n = g.node(id);
    const std::string func = FuncName(n);
    const bool produced = Produces(stmt, func);
    if (n.op == OpKind::kTranspose) {
      ++transposes;
      EXPECT_FALSE(produced) << "transpose node '" << n.name << "' is materialized";
    } else if (n.op == OpKind::kMatMul) {
      // Its own loop nest, or its accumulator tiles inside the parameter update that reads it.
      const std::string acc = FuncName(n, "acc");
      if (stmt.find(func) == std::string::npos && !Produces(stmt, acc)) continue;
      ++matmuls;
      EXPECT_TRUE(produced || Produces(stmt, acc))
          << "matmul node '" << n.name << "' is computed nowhere";
    }
  }
  EXPECT_GE(transposes, 6);  // the heads' views, K^T and the gradients' transposes
  EXPECT_GE(matmuls, 12);    // forward, and two per matmul backward
}

// Losses and parameters of 5 steps of `opt` (Adam by default) on the model `build` makes, from
// deterministic inputs.
std::vector<std::vector<float>> AdamSteps(const std::function<ModelDef(Graph&)>& build,
                                          const CompileOptions& o, size_t* segments,
                                          const Optimizer& opt = Adam(0.01)) {
  Graph g;
  ModelDef m = build(g);
  auto step = CompileTrainStep(g, m, opt, o);
  EXPECT_TRUE(step.ok()) << step.status();
  if (!step.ok()) return {};
  auto* split = dynamic_cast<SegmentedStep*>(step->get());
  *segments = split == nullptr ? 1 : split->segments();
  const Signature& sig = (*step)->signature();
  std::vector<Tensor> in, out;
  for (const ArgSpec& a : sig.inputs) in.emplace_back(a.type, a.shape);
  for (const ArgSpec& a : sig.outputs) out.emplace_back(a.type, a.shape);
  for (size_t i = 0; i < sig.inputs.size(); ++i) {
    Tensor& t = in[i];
    for (int64_t e = 0; e < t.size(); ++e) {
      if (t.type() == ScalarType::kI32) {
        t.data<int32_t>()[e] = static_cast<int32_t>((e * 7) % 10);
      } else if (sig.inputs[i].role != ArgRole::kState) {
        t.data<float>()[e] = static_cast<float>(0.3 * std::sin(0.7 * e + i));
      } else {
        t.data<float>()[e] = 0;
      }
    }
  }
  std::vector<std::vector<float>> results;
  for (int s = 0; s < 5; ++s) {
    for (size_t i = 0; i < sig.inputs.size(); ++i) {
      if (sig.inputs[i].kind == ArgKind::kLearningRate) in[i].data<float>()[0] = 0.01f;
      if (sig.inputs[i].kind == ArgKind::kStep) in[i].data<float>()[0] = static_cast<float>(s + 1);
    }
    std::vector<TensorRef> ir, orf;
    for (Tensor& t : in) ir.push_back(t.ref());
    for (Tensor& t : out) orf.push_back(t.ref());
    absl::Status st = (*step)->Run(ir, orf);
    EXPECT_TRUE(st.ok()) << st;
    if (!st.ok()) return {};
    for (size_t o = 0; o < sig.outputs.size(); ++o) {
      const ArgSpec& a = sig.outputs[o];
      if (a.updates >= 0) std::memcpy(in[a.updates].raw(), out[o].raw(), out[o].bytes());
      if (a.role == ArgRole::kLoss) results.push_back({out[o].data<float>()[0]});
    }
  }
  for (size_t i = 0; i < sig.inputs.size(); ++i) {
    if (sig.inputs[i].role == ArgRole::kParam) {
      results.emplace_back(in[i].data<float>(), in[i].data<float>() + in[i].size());
    }
  }
  return results;
}

// The 5 losses and 6 parameters of two AdamSteps runs agree to `rtol` (relative, plus as much
// absolute).
void ExpectSameSteps(const std::vector<std::vector<float>>& a,
                     const std::vector<std::vector<float>>& b, double rtol) {
  ASSERT_EQ(a.size(), b.size());
  ASSERT_EQ(a.size(), 5u + 6u);  // 5 losses, 6 parameters
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].size(), b[i].size());
    for (size_t e = 0; e < a[i].size(); ++e) {
      EXPECT_NEAR(a[i][e], b[i][e], rtol * (1 + std::fabs(a[i][e])))
          << "result " << i << "[" << e << "]";
    }
  }
}

// A small MLP compiled as one pipeline or split into segments (CompileOptions::max_pipeline_stages)
// with intermediates between them.
// `compile_threads`: CompileOptions::compile_threads (0: one per core).
// A 12 -> h1 -> h2 -> 10 MLP over a batch of 8.
ModelDef SmallMlp(Graph& g, int64_t h1, int64_t h2) {
  Value x = g.Input("x", {8, 12});
  Value y = g.Input("y", {8}, DType::kInt32);
  Linear fc1(g, "fc1", 12, h1), fc2(g, "fc2", h1, h2), fc3(g, "fc3", h2, 10);
  ModelDef m;
  m.inputs = {x, y};
  m.loss = Mean(SoftmaxCrossEntropy(fc3(Relu(fc2(Relu(fc1(x))))), y));
  return m;
}

std::vector<std::vector<float>> MlpAdamSteps(int64_t max_stages, size_t* segments,
                                             int compile_threads = 0) {
  CompileOptions o;
  o.max_pipeline_stages = max_stages;
  o.compile_threads = compile_threads;
  return AdamSteps([](Graph& g) { return SmallMlp(g, 16, 16); }, o, segments);
}

// SGD on an MLP whose widths fill no register tile evenly: each weight gradient (X^T dy) is
// computed tile by tile inside its parameter's update (OpDef::epilogue), never stored whole, and
// the steps agree with the plain schedule's, where every product is stored.
TEST(CompileTest, WeightGradientsComputedInsideTheirUpdatesTrainAsStoredOnes) {
  auto build = [](Graph& g) { return SmallMlp(g, 20, 36); };
  size_t segments = 0;
  CompileOptions fused, plain;
  plain.plain_schedule = true;
  std::vector<std::vector<float>> a = AdamSteps(build, fused, &segments, Sgd(0.5));
  std::vector<std::vector<float>> b = AdamSteps(build, plain, &segments, Sgd(0.5));
  ExpectSameSteps(a, b, 1e-5);
  // The step's loop nests: the three weight gradients' accumulators, and no buffer of their own.
  Graph g;
  ModelDef m = build(g);
  CompileOptions o;
  o.stmt_path = ::testing::TempDir() + "/fused_updates.stmt";
  ASSERT_TRUE(CompileTrainStep(g, m, Sgd(0.5), o).ok());
  const std::string stmt = ReadStmt(o.stmt_path);
  int fused_products = 0;
  for (int id = 0; id < g.size(); ++id) {
    const Node& n = g.node(id);
    if (n.op != OpKind::kMatMul) continue;
    fused_products += Produces(stmt, FuncName(n, "acc")) && !Produces(stmt, FuncName(n));
  }
  EXPECT_EQ(fused_products, 3);
}

// A two-convolution CNN (the tutorial's, narrower and on 12x12 images) over a batch of `batch`.
// `relu1_penalty`: the loss also reads conv1's full-resolution ReLU output (its mean, scaled).
ModelDef SmallCnn(Graph& g, int64_t batch, double relu1_penalty = 0) {
  Value x = g.Input("x", {batch, 144});
  Value y = g.Input("y", {batch}, DType::kInt32);
  Conv2D::Options same;
  same.padding = 2;
  Conv2D c1(g, "conv1", 1, 4, 5, same), c2(g, "conv2", 4, 6, 5, same);
  Linear fc(g, "fc", 54, 10);
  Value r1 = Relu(c1(Reshape(x, {batch, 1, 12, 12})));
  Value h = MaxPool2d(Relu(c2(MaxPool2d(r1, 2))), 2);
  ModelDef m;
  m.inputs = {x, y};
  m.loss = Mean(SoftmaxCrossEntropy(fc(Flatten(h)), y));
  if (relu1_penalty != 0) m.loss = m.loss + relu1_penalty * Mean(r1);
  return m;
}

// The ReLUs the step's graph computes, by shape.
std::vector<Shape> ReluShapes(const Graph& g, int root) {
  std::vector<Shape> shapes;
  for (int id : g.Reachable({root})) {
    if (g.node(id).op == OpKind::kRelu) shapes.push_back(g.node(id).shape);
  }
  return shapes;
}

// compiler/passes.h FuseReluIntoMaxPool: max_pool2d(relu(x)) as relu(max_pool2d(x)) changes no
// bit of the losses or parameters, also where the ReLU's output has another reader.
// Max pooling, where the gather reads the window maximum its argmax found: a NaN anywhere in a
// window is that window's output, and a window of -infinity pools to -infinity, in both layouts
// (a batch of 16 fills an AVX-512 vector, the batch-inner layout; a batch of 1 stays row-major).
TEST(CompileTest, MaxPoolPropagatesNaNAndKeepsInfinity) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (int64_t batch : {1, 16}) {
    SCOPED_TRACE(batch);
    Graph g(Mode::kEval);
    Value x = g.Input("x", {batch, 1, 4, 4});
    Value y = MaxPool2d(x, 2);
    StepProgram p;
    p.inputs.push_back({x.id(), ArgSpec{"x", ArgRole::kData, ScalarType::kF32, x.shape(), {}}});
    p.outputs.push_back({y.id(), ArgSpec{"y", ArgRole::kOutput, ScalarType::kF32, y.shape(), {}}});
    auto step = CompileProgram(g, p, CompileOptions());
    ASSERT_TRUE(step.ok()) << step.status();
    Tensor in(ScalarType::kF32, x.shape()), out(ScalarType::kF32, y.shape());
    float* xs = in.data<float>();
    for (int64_t e = 0; e < in.size(); ++e) xs[e] = static_cast<float>((e * 7) % 11) - 5;
    float* last = xs + (batch - 1) * 16;            // the last image: rows of 4
    last[0] = nan;                                  // window (0, 0), its first tap
    last[7] = nan;                                  // window (0, 1), its last tap
    for (int k : {10, 11, 14, 15}) last[k] = -inf;  // window (1, 1)
    ASSERT_TRUE((*step)->Run({in.ref()}, {out.ref()}).ok());
    const float* ys = out.data<float>() + (batch - 1) * 4;
    EXPECT_TRUE(std::isnan(ys[0]));
    EXPECT_TRUE(std::isnan(ys[1]));
    EXPECT_EQ(ys[2], std::max({last[8], last[9], last[12], last[13]}));
    EXPECT_EQ(ys[3], -inf);
    for (int64_t i = 0; i + 1 < batch; ++i) {  // the other images: plain maxima
      const float* xi = xs + i * 16;
      EXPECT_EQ(out.data<float>()[i * 4], std::max({xi[0], xi[1], xi[4], xi[5]}));
    }
  }
}

TEST(CompileTest, ReluFusedIntoMaxPoolChangesNoBit) {
  for (double penalty : {0.0, 0.5}) {
    SCOPED_TRACE(penalty);
    auto build = [penalty](Graph& g) { return SmallCnn(g, 32, penalty); };
    CompileOptions fused, separate;
    separate.fuse_relu_pool = false;
    size_t segments = 0;
    std::vector<std::vector<float>> a = AdamSteps(build, fused, &segments);
    std::vector<std::vector<float>> b = AdamSteps(build, separate, &segments);
    ExpectSameSteps(a, b, 0);
  }
  // Compiling rewrote the model's graph: no ReLU is left for the loss.
  const Shape r1{32, 4, 12, 12}, r2{32, 6, 6, 6};
  Graph compiled;
  ModelDef mc = SmallCnn(compiled, 32);
  EXPECT_EQ(ReluShapes(compiled, mc.loss.id()), (std::vector<Shape>{r1, r2}));
  ASSERT_TRUE(CompileTrainStep(compiled, mc, Sgd(0.1), CompileOptions()).ok());
  EXPECT_TRUE(ReluShapes(compiled, mc.loss.id()).empty());
  Graph g;
  ModelDef m = SmallCnn(g, 32);
  EXPECT_EQ(FuseReluIntoMaxPool(g, {m.loss.id()}), 2);
  EXPECT_EQ(FuseReluIntoMaxPool(g, {m.loss.id()}), 0);
  EXPECT_TRUE(ReluShapes(g, m.loss.id()).empty());
  // A ReLU read elsewhere stays for that reader.
  Graph g2;
  ModelDef m2 = SmallCnn(g2, 32, 0.5);
  EXPECT_EQ(FuseReluIntoMaxPool(g2, {m2.loss.id()}), 2);
  EXPECT_EQ(ReluShapes(g2, m2.loss.id()), (std::vector<Shape>{r1}));
}

// A convolution's weight gradient reads the padded copy of its input that the forward convolution
// made (batch-inner): the step holds one padded copy per padded input, not two.
TEST(LayoutTest, WeightGradientsShareTheForwardPaddedCopy) {
  Graph g;
  ModelDef m = SmallCnn(g, 32);
  CompileOptions o;
  o.layout = LayoutChoice::kBatchInner;
  o.stmt_path = ::testing::TempDir() + "/shared_pad.stmt";
  ASSERT_TRUE(CompileTrainStep(g, m, Sgd(0.1), o).ok());
  const std::string stmt = ReadStmt(o.stmt_path);
  int forward_pads = 0, gradient_pads = 0;
  for (int id = 0; id < g.size(); ++id) {
    const Node& n = g.node(id);
    const std::string pad = FuncName(n, "pad");
    if (n.op == OpKind::kConv2D) forward_pads += Produces(stmt, pad);
    if (n.op == OpKind::kConv2DBackwardWeight) gradient_pads += Produces(stmt, pad);
  }
  EXPECT_EQ(forward_pads, 2);  // conv1's image (a batch-inner copy) and conv2's padded input
  EXPECT_EQ(gradient_pads, 0);
}

std::set<std::string> PlannedOps(int64_t batch, LayoutChoice choice, const TargetSpec& target) {
  Graph g;
  ModelDef m = SmallCnn(g, batch);
  std::vector<int> nodes = g.Reachable({m.loss.id()});
  std::sort(nodes.begin(), nodes.end());
  auto t = ToHalideTarget(target);
  EXPECT_TRUE(t.ok()) << t.status();
  LowerCtx ctx(Halide::Float(32), *t);
  std::set<std::string> ops;
  for (const auto& [id, layout] :
       PlanLayouts(g, nodes, {m.inputs[0].id(), m.inputs[1].id()}, choice, ctx)) {
    EXPECT_EQ(layout, Layout::kBatchInner);
    EXPECT_EQ(g.node(id).shape.size(), 4u) << g.node(id).name;
    ops.insert(DefOf(g.node(id)).name);
  }
  return ops;
}

TEST(LayoutTest, ConvolutionActivationsAreBatchInnerWhereTheBatchFillsVectors) {
  const std::set<std::string> cnn = {"conv2d", "add", "relu", "max_pool2d_argmax",
                                     "max_pool2d_gather"};
  std::set<std::string> at64 = PlannedOps(64, LayoutChoice::kAuto, {});
  for (const std::string& op : cnn) EXPECT_TRUE(at64.count(op)) << op;
  EXPECT_FALSE(at64.count("reshape"));  // the image and the flattened features stay row-major
  EXPECT_FALSE(at64.count("matmul"));
  EXPECT_EQ(PlannedOps(1000, LayoutChoice::kAuto, {}), at64);     // 8 lanes: half a vector or more
  EXPECT_TRUE(PlannedOps(1, LayoutChoice::kAuto, {}).empty());    // inference: row-major
  EXPECT_TRUE(PlannedOps(6, LayoutChoice::kAuto, {}).empty());    // 2 lanes: row-major
  EXPECT_EQ(PlannedOps(6, LayoutChoice::kBatchInner, {}), at64);  // forced, whatever the batch
  EXPECT_TRUE(PlannedOps(64, LayoutChoice::kRowMajor, {}).empty());
  TargetSpec cuda;
  cuda.device = Device::kCuda;
  EXPECT_TRUE(PlannedOps(64, LayoutChoice::kAuto, cuda).empty());  // GPU steps stay row-major
  EXPECT_FALSE(ParseLayoutChoice("nchw").ok());
  EXPECT_EQ(*ParseLayoutChoice("row_major"), LayoutChoice::kRowMajor);
}

TEST(LayoutTest, BatchInnerAndRowMajorStepsTrainAlike) {
  CompileOptions auto_layout, row_major;
  auto_layout.dump_graphs = true;  // prints the plan
  row_major.layout = LayoutChoice::kRowMajor;
  size_t segments = 0;
  auto build = [](Graph& g) { return SmallCnn(g, 32); };
  ::testing::internal::CaptureStderr();
  std::vector<std::vector<float>> a = AdamSteps(build, auto_layout, &segments);
  const std::string dump = ::testing::internal::GetCapturedStderr();
  std::vector<std::vector<float>> b = AdamSteps(build, row_major, &segments);
  EXPECT_NE(dump.find("conv2d: batch-inner, "), std::string::npos) << dump.substr(0, 2000);
  // Different summation orders (image lanes against row vectors): float32 rounding apart.
  ExpectSameSteps(a, b, 1e-4);
}

// 3x3 convolutions (the second strided), whose weight gradients take the batch-inner filter
// tiles (2 output channels x 3 x 3 taps), over two image blocks at batch 32 on AVX-512.
TEST(LayoutTest, ThreeByThreeConvolutionsTrainAlikeInBothLayouts) {
  auto build = [](Graph& g) {
    const int64_t batch = 32;
    Value x = g.Input("x", {batch, 144});
    Value y = g.Input("y", {batch}, DType::kInt32);
    Conv2D::Options same, down;
    same.padding = down.padding = 1;
    down.stride = 2;
    Conv2D c1(g, "conv1", 1, 4, 3, same), c2(g, "conv2", 4, 8, 3, down);
    Linear fc(g, "fc", 8 * 6 * 6, 10);
    Value h = Relu(c2(Relu(c1(Reshape(x, {batch, 1, 12, 12})))));
    ModelDef m;
    m.inputs = {x, y};
    m.loss = Mean(SoftmaxCrossEntropy(fc(Flatten(h)), y));
    return m;
  };
  CompileOptions auto_layout, row_major;
  row_major.layout = LayoutChoice::kRowMajor;
  size_t segments = 0;
  ExpectSameSteps(AdamSteps(build, auto_layout, &segments), AdamSteps(build, row_major, &segments),
                  1e-4);
}

// A split step's batch-inner activations cross between its segments as they are stored (the batch
// innermost, buffers of shape [C, H, W, N]): the same results as one pipeline.
TEST(LayoutTest, SegmentsPassBatchInnerActivationsAsStored) {
  auto build = [](Graph& g) { return SmallCnn(g, 32); };
  CompileOptions one, split;
  split.max_pipeline_stages = 8;
  size_t segments = 0;
  std::vector<std::vector<float>> a = AdamSteps(build, one, &segments);
  EXPECT_EQ(segments, 1u);
  std::vector<std::vector<float>> b = AdamSteps(build, split, &segments);
  EXPECT_GE(segments, 3u);
  ExpectSameSteps(a, b, 1e-5);
  // Which intermediates cross batch-last: every activation (and activation gradient) but the
  // reshaped image, a view of a step input (row-major), which conv1's weight gradient reads; none
  // under the row-major layout. (A weight gradient, [6, 4, 5, 5], is no activation.)
  auto shapes = [&](LayoutChoice layout) {
    Graph g;
    CompileOptions o = split;
    o.layout = layout;
    auto step = CompileTrainStep(g, build(g), Adam(0.01), o);
    EXPECT_TRUE(step.ok()) << step.status();
    std::vector<Shape> rank4;
    auto* s = step.ok() ? dynamic_cast<SegmentedStep*>(step->get()) : nullptr;
    if (s == nullptr) return rank4;
    for (const ArgSpec& m : s->plan().intermediates) {
      if (m.shape.size() == 4 && (m.shape.front() == 32 || m.shape.back() == 32)) {
        rank4.push_back(m.shape);
      }
    }
    return rank4;
  };
  std::vector<Shape> carried = shapes(LayoutChoice::kAuto);
  int batch_last = 0;
  for (const Shape& s : carried) {
    if (s.back() == 32) {
      ++batch_last;
    } else {
      EXPECT_EQ(s, (Shape{32, 1, 12, 12})) << ShapeString(s);
    }
  }
  EXPECT_GE(batch_last, 2);
  std::vector<Shape> row_major = shapes(LayoutChoice::kRowMajor);
  ASSERT_FALSE(row_major.empty());
  for (const Shape& s : row_major) EXPECT_EQ(s.front(), 32) << ShapeString(s);
}

// An evaluation model whose conv1 output (8 x 28 x 28 floats, 25 KB per example) at batch 400
// is 10 MB: about ten 1 MB blocks. `batch_mean` subtracts the batch's mean image first, which
// mixes the examples.
ModelDef BlockableCnn(Graph& g, bool batch_mean = false) {
  const int64_t batch = 400;
  Value x = g.Input("x", {batch, 784});
  Value y = g.Input("y", {batch}, DType::kInt32);
  Value image = batch_mean ? x - Mean(x, {0}, true) : x;
  Conv2D::Options same;
  same.padding = 2;
  Conv2D c1(g, "conv1", 1, 8, 5, same), c2(g, "conv2", 8, 8, 5, same);
  Linear fc(g, "fc", 8 * 7 * 7, 10);
  Value h = MaxPool2d(Relu(c1(Reshape(image, {batch, 1, 28, 28}))), 2);
  Value logits = fc(Flatten(MaxPool2d(Relu(c2(h)), 2)));
  ModelDef m;
  m.inputs = {x, y};
  m.loss = Mean(SoftmaxCrossEntropy(logits, y));
  m.eval_outputs = {{"logits", logits}};
  return m;
}

// The eval step's output on fixed inputs and parameters.
std::vector<float> EvalLogits(bool example_blocks) {
  Graph g(Mode::kEval);
  CompileOptions o;
  o.example_blocks = example_blocks;
  auto step = CompileEvalStep(g, BlockableCnn(g), o);
  EXPECT_TRUE(step.ok()) << step.status();
  if (!step.ok()) return {};
  const Signature& sig = (*step)->signature();
  std::vector<Tensor> in, out;
  std::vector<TensorRef> ir, orf;
  for (size_t i = 0; i < sig.inputs.size(); ++i) {
    in.emplace_back(sig.inputs[i].type, sig.inputs[i].shape);
    for (int64_t e = 0; e < in[i].size(); ++e) {
      in[i].data<float>()[e] = static_cast<float>(0.5 * std::sin(0.37 * e + 3 * i));
    }
  }
  for (const ArgSpec& a : sig.outputs) out.emplace_back(a.type, a.shape);
  for (Tensor& t : in) ir.push_back(t.ref());
  for (Tensor& t : out) orf.push_back(t.ref());
  absl::Status st = (*step)->Run(ir, orf);
  EXPECT_TRUE(st.ok()) << st;
  return std::vector<float>(out[0].data<float>(), out[0].data<float>() + out[0].size());
}

TEST(ExampleBlocksTest, EvaluationInBlocksComputesWhatTheWholeBatchComputes) {
  Graph g(Mode::kEval);
  auto program = BuildEvalProgram(g, BlockableCnn(g), {});
  ASSERT_TRUE(program.ok()) << program.status();
  auto t = ToHalideTarget({});
  ASSERT_TRUE(t.ok());
  LowerCtx ctx(Halide::Float(32), *t);
  const int64_t block = ExampleBlock(g, *program, ctx);
  EXPECT_GE(block, 32);  // 1 MB of conv1 output: 41 examples, rounded to whole vectors
  EXPECT_LE(block, 56);
  EXPECT_EQ(block % ctx.BatchLanes(400), 0);
  // The same loops over each example, blocked or not: the same bits.
  std::vector<float> blocked = EvalLogits(true), whole = EvalLogits(false);
  ASSERT_EQ(blocked.size(), 4000u);
  EXPECT_EQ(blocked, whole);
}

TEST(ExampleBlocksTest, StepsThatMixExamplesOrTrainAreNotBlocked) {
  auto t = ToHalideTarget({});
  ASSERT_TRUE(t.ok());
  LowerCtx ctx(Halide::Float(32), *t);
  Graph mixed(Mode::kEval), train;
  auto mixes = BuildEvalProgram(mixed, BlockableCnn(mixed, /*batch_mean=*/true), {});
  ASSERT_TRUE(mixes.ok()) << mixes.status();
  EXPECT_EQ(ExampleBlock(mixed, *mixes, ctx), 0);
  auto trains = BuildTrainProgram(train, BlockableCnn(train), Sgd(0.1), {});
  ASSERT_TRUE(trains.ok()) << trains.status();
  EXPECT_EQ(ExampleBlock(train, *trains, ctx), 0);
  TargetSpec cuda;
  cuda.device = Device::kCuda;
  auto c = ToHalideTarget(cuda);
  ASSERT_TRUE(c.ok());
  Graph gpu(Mode::kEval);
  auto on_gpu = BuildEvalProgram(gpu, BlockableCnn(gpu), {});
  ASSERT_TRUE(on_gpu.ok());
  EXPECT_EQ(ExampleBlock(gpu, *on_gpu, LowerCtx(Halide::Float(32), *c)), 0);
}

TEST(CompileTest, ASegmentedStepComputesWhatOnePipelineComputes) {
  size_t one = 0, many = 0;
  std::vector<std::vector<float>> a = MlpAdamSteps(0, &one);
  std::vector<std::vector<float>> b = MlpAdamSteps(6, &many);
  EXPECT_EQ(one, 1u);
  EXPECT_GE(many, 4u);  // segments of about 3 stages each
  ExpectSameSteps(a, b, 1e-5);
  // Bad routes are refused when the step is put together, not at its first run.
  Signature sig;
  sig.outputs.push_back({"loss", ArgRole::kLoss, ScalarType::kF32, {}, {}});
  SegmentPlan plan;
  plan.parts.push_back({{}, {-1}});  // writes an intermediate that does not exist
  auto bad = SegmentedStep::Make(sig, plan, {});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("intermediate 0 is out of range"),
            std::string::npos)
      << bad.status();
  plan.parts.clear();
  bad = SegmentedStep::Make(sig, plan, {});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("no segment writes the step's output 'loss'"),
            std::string::npos)
      << bad.status();
}

// The segments of a split step compile on several threads at once (CompileOptions::
// compile_threads) into the same code as one after the other: the same bits, step after step.
TEST(CompileTest, SegmentsCompiledConcurrentlyComputeTheSameBits) {
  size_t serial = 0, concurrent = 0;
  std::vector<std::vector<float>> a = MlpAdamSteps(6, &serial, 1);
  std::vector<std::vector<float>> b = MlpAdamSteps(6, &concurrent, 4);
  EXPECT_GE(serial, 4u);
  EXPECT_EQ(serial, concurrent);
  ASSERT_GE(a.size(), 5u);  // 5 losses, then the parameters
  EXPECT_EQ(a, b);
}

TEST(CompileTest, ShapeErrorsComeBackFromCompile) {
  Graph g;
  ModelDef m = TinyRegression(g, 2);
  m.loss = m.loss + Sum(g.Input("bad", {3, 2}) + g.Input("worse", {4}));
  auto step = CompileTrainStep(g, m, Sgd(0.1), {});
  ASSERT_EQ(step.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(step.status().message().find("do not broadcast"), std::string::npos) << step.status();
}

TEST(TargetTest, NamesParseAndMapToHalideFeatures) {
  auto cuda = ParseTarget("host-cuda:90");
  ASSERT_TRUE(cuda.ok()) << cuda.status();
  EXPECT_EQ(cuda->device, Device::kCuda);
  EXPECT_EQ(TargetName(*cuda), "host-cuda:90");
  auto t = ToHalideTarget(*cuda);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_TRUE(t->has_feature(Halide::Target::CUDA));
  // 9.0 has no Halide 14 flag: the highest one (8.6) is used and the driver JIT-compiles.
  EXPECT_TRUE(t->has_feature(Halide::Target::CUDACapability86));
  auto plain = ToHalideTarget(*ParseTarget("host-cuda"));
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(plain->has_feature(Halide::Target::CUDACapability70));
  auto portable = ToHalideTarget(*ParseTarget("portable"));
  ASSERT_TRUE(portable.ok());
  EXPECT_FALSE(portable->has_feature(Halide::Target::CUDA));
  EXPECT_FALSE(portable->has_feature(Halide::Target::AVX512));
  for (const char* bad : {"gpu", "host-cuda:x", "host:86", "host-cuda:7"}) {
    auto r = ParseTarget(bad);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(r.status().message().find(bad), std::string::npos) << r.status();
  }
}

// Halide 14 names a Zen 4 avx512_sapphirerapids and may then emit AVX-VNNI instructions it lacks
// (an illegal instruction at run time): the host target claims the feature only with the CPU's
// AVX-VNNI. Checked on whatever CPU runs the test (on Sapphire Rapids both sides are true).
TEST(TargetTest, SapphireRapidsCodeOnlyWhereTheCpuHasAvxVnni) {
  auto host = ToHalideTarget(TargetSpec{});
  ASSERT_TRUE(host.ok()) << host.status();
  if (!CpuHasAvxVnni()) {
    EXPECT_FALSE(host->has_feature(Halide::Target::AVX512_SapphireRapids)) << host->to_string();
  }
}

// CPU code leaves out Halide's run-time asserts unless asked (the arguments are checked before the
// call: RunRejectsAnInputThatAliasesAnOutput); CUDA code and sanitizer builds keep them.
TEST(TargetTest, CpuCodeLeavesOutHalideAssertsUnlessAsked) {
  TargetSpec cpu, asked, cuda;
  asked.halide_asserts = true;
  cuda.device = Device::kCuda;
  auto t = ToHalideTarget(cpu), a = ToHalideTarget(asked), c = ToHalideTarget(cuda);
  ASSERT_TRUE(t.ok() && a.ok() && c.ok());
#ifndef KILN_SANITIZE
  EXPECT_TRUE(t->has_feature(Halide::Target::NoAsserts)) << t->to_string();
#else
  EXPECT_FALSE(t->has_feature(Halide::Target::NoAsserts)) << t->to_string();
#endif
  EXPECT_FALSE(a->has_feature(Halide::Target::NoAsserts)) << a->to_string();
  EXPECT_FALSE(c->has_feature(Halide::Target::NoAsserts)) << c->to_string();
}

// CPU code has no bounds-query branch (Kiln never asks a step for bounds) and no LLVM loop passes
// over Halide's own loops (the schedules vectorize and unroll): both cut compilation. A CUDA
// target keeps Halide's defaults.
TEST(TargetTest, CpuTargetsLeaveOutBoundsQueriesAndLlvmLoopPasses) {
  TargetSpec cpu, portable, cuda;
  portable.portable = true;
  cuda.device = Device::kCuda;
  auto t = ToHalideTarget(cpu), p = ToHalideTarget(portable), c = ToHalideTarget(cuda);
  ASSERT_TRUE(t.ok() && p.ok() && c.ok());
  for (const Halide::Target& x : {*t, *p}) {
    EXPECT_TRUE(x.has_feature(Halide::Target::NoBoundsQuery)) << x.to_string();
    EXPECT_TRUE(x.has_feature(Halide::Target::DisableLLVMLoopOpt)) << x.to_string();
  }
  EXPECT_FALSE(c->has_feature(Halide::Target::NoBoundsQuery)) << c->to_string();
  EXPECT_FALSE(c->has_feature(Halide::Target::DisableLLVMLoopOpt)) << c->to_string();
}

TEST(CompileTest, PortableTargetCompilesAndRuns) {
  Graph g;
  CompileOptions o;
  o.target.portable = true;
  auto step = CompileEvalStep(g, TinyRegression(g, 3), o);
  ASSERT_TRUE(step.ok()) << step.status();
}

// Synthetic, learnable data: the label is the index of the brightest of 4 pixel blocks.
Dataset Synthetic(int64_t count, uint64_t seed) {
  Dataset d;
  d.count = count;
  d.example_shape = {2, 8};
  Rng rng(seed);
  for (int64_t i = 0; i < count; ++i) {
    int label = static_cast<int>(rng.Next() % 4);
    for (int p = 0; p < 16; ++p) {
      d.pixels.push_back(
          static_cast<uint8_t>(p / 4 == label ? 200 + rng.Next() % 55 : rng.Next() % 120));
    }
    d.labels.push_back(label);
  }
  return d;
}

ModelDef TinyClassifier(Graph& g, int64_t batch) {
  Value x = g.Input("x", {batch, 16});
  Value y = g.Input("y", {batch}, DType::kInt32);
  Value logits = Linear(g, "fc", 16, 4)(x);
  ModelDef m;
  m.inputs = {x, y};
  m.loss = Mean(SoftmaxCrossEntropy(logits, y));
  m.metrics = {{"correct", AccuracyCount(logits, y)}};
  m.eval_outputs = {{"prediction", ArgMax(logits, 1)}};
  return m;
}

class TrainerTest : public ::testing::Test {
 protected:
  // Compiled once for the suite; a compile error fails every test.
  static void SetUpTestSuite() {
    train_graph_ = new Graph;
    eval_graph_ = new Graph;
    auto train = CompileTrainStep(*train_graph_, TinyClassifier(*train_graph_, 8), Sgd(0.5), {});
    auto eval = CompileEvalStep(*eval_graph_, TinyClassifier(*eval_graph_, 7), {});
    status_ = new absl::Status(train.ok() ? eval.status() : train.status());
    if (status_->ok()) {
      train_ = train->release();
      eval_ = eval->release();
    }
  }
  void SetUp() override { ASSERT_TRUE(status_->ok()) << *status_; }
  static Graph *train_graph_, *eval_graph_;
  static Executable *train_, *eval_;
  static absl::Status* status_;
};
Graph* TrainerTest::train_graph_;
Graph* TrainerTest::eval_graph_;
Executable* TrainerTest::train_;
Executable* TrainerTest::eval_;
absl::Status* TrainerTest::status_;

TEST_F(TrainerTest, LearnsAndEvaluatesEveryExampleIncludingThePartialBatch) {
  Dataset train = Synthetic(400, 1), test = Synthetic(103, 2);
  Trainer t(train_, eval_);
  ASSERT_TRUE(t.Initialize(3).ok());
  auto stats = t.Train(train, TrainConfig::Silent(5));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->steps, 5 * 50);
  EXPECT_LT(stats->epochs.back().mean_loss, stats->epochs.front().mean_loss);
  auto eval = t.Evaluate(test);
  ASSERT_TRUE(eval.ok()) << eval.status();
  EXPECT_EQ(eval->count, 103);
  EXPECT_GT(eval->accuracy(), 0.9);
  int64_t total = 0;
  for (const auto& row : eval->confusion)
    for (int64_t v : row) total += v;
  EXPECT_EQ(total, 103);
}

TEST_F(TrainerTest, SameSeedGivesBitwiseIdenticalParameters) {
  Dataset train = Synthetic(200, 4);
  std::vector<Tensor> results;
  for (int run = 0; run < 2; ++run) {
    Trainer t(train_, eval_);
    ASSERT_TRUE(t.Initialize(11).ok());
    ASSERT_TRUE(t.Train(train, TrainConfig::Silent(2)).ok());
    results.push_back(t.parameter("fc.weight"));
  }
  EXPECT_EQ(std::memcmp(results[0].raw(), results[1].raw(), results[0].bytes()), 0);
}

TEST_F(TrainerTest, SaveAndLoadRestoreParameters) {
  Dataset train = Synthetic(80, 5);
  Trainer a(train_, eval_);
  ASSERT_TRUE(a.Initialize(1).ok());
  ASSERT_TRUE(a.Train(train, TrainConfig::Silent(1)).ok());
  std::string path = ::testing::TempDir() + "/trainer_test.safetensors";
  ASSERT_TRUE(a.Save(path, {{"note", "test"}}).ok());
  Trainer b(train_, eval_);
  ASSERT_TRUE(b.Initialize(2).ok());
  ASSERT_TRUE(b.Load(path).ok());
  const Tensor& wa = a.parameter("fc.weight");
  const Tensor& wb = b.parameter("fc.weight");
  EXPECT_EQ(std::memcmp(wa.raw(), wb.raw(), wa.bytes()), 0);
  auto f = LoadSafetensors(path);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->metadata.at("note"), "test");
}

TEST_F(TrainerTest, LoadRefusesACheckpointOfAnotherModelNamingTheTensor) {
  Tensor w(ScalarType::kF32, {16, 5}), bias(ScalarType::kF32, {4});
  std::string path = ::testing::TempDir() + "/other_model.safetensors";
  ASSERT_TRUE(SaveSafetensors(path, {{"fc.weight", &w}, {"fc.bias", &bias}}).ok());
  Trainer t(train_, eval_);
  ASSERT_TRUE(t.Initialize(1).ok());
  absl::Status s = t.Load(path);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("parameter 'fc.weight' expected F32[16, 4], got F32[16, 5]"),
            std::string::npos)
      << s;
  Tensor only_bias(ScalarType::kF32, {4});
  ASSERT_TRUE(SaveSafetensors(path, {{"fc.bias", &only_bias}}).ok());
  s = t.Load(path);
  EXPECT_NE(s.message().find("parameter 'fc.weight' is missing"), std::string::npos) << s;
}

TEST_F(TrainerTest, RejectsUnknownHyperparameterAndMismatchedData) {
  Trainer t(train_, eval_);
  ASSERT_TRUE(t.Initialize(1).ok());
  TrainConfig c = TrainConfig::Silent(1);
  c.hyper["momentum"] = 0.9;
  auto st = t.Train(Synthetic(16, 1), c);
  EXPECT_EQ(st.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.status().message().find("no hyperparameter 'momentum'"), std::string::npos);
  Dataset wrong = Synthetic(16, 1);
  wrong.example_shape = {4, 8};
  wrong.pixels.resize(16 * 32);
  st = t.Train(wrong, TrainConfig());
  EXPECT_NE(st.status().message().find("values per example"), std::string::npos) << st.status();
}

}  // namespace
}  // namespace kiln

namespace kiln {
namespace {

// Resource limits: a step whose estimated memory exceeds the configured limit is refused with
// the estimate before any Halide compilation; under the limit it compiles.
TEST(MemoryLimitTest, RefusesAStepOverTheLimitWithTheEstimate) {
  auto build = [](Graph& g) {
    ModelDef m;
    Value x = g.Input("x", {4096, 1, 28, 28});
    Value y = g.Input("y", {4096}, DType::kInt32);
    Value h = Relu(Conv2D(g, "conv", 1, 8, 3)(x));
    Value logits = Linear(g, "fc", 8 * 26 * 26, 10)(Flatten(h));
    m.inputs = {x, y};
    m.loss = Mean(SoftmaxCrossEntropy(logits, y));
    return m;
  };
  Graph g;
  CompileOptions o;
  o.memory_limit_bytes = 64 << 20;
  auto refused = CompileTrainStep(g, build(g), Sgd(0.1), o);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted) << refused.status();
  EXPECT_NE(refused.status().message().find("the step would need about"), std::string::npos);
  EXPECT_NE(refused.status().message().find("over the memory limit of 64.0 MiB"), std::string::npos)
      << refused.status();
  Graph g2;
  o.memory_limit_bytes = int64_t{8} << 30;
  auto fits = CompileTrainStep(g2, build(g2), Sgd(0.1), o);
  EXPECT_TRUE(fits.ok()) << fits.status();
}

}  // namespace
}  // namespace kiln
