#include "dsl/graph.h"

#include <cmath>

#include "dsl/api.h"
#include "gtest/gtest.h"

namespace kiln {
namespace {

TEST(GraphTest, InfersShapesAndNamesNodes) {
  Graph g;
  Value x = g.Input("image", {16, 784});
  Linear fc(g, "fc", 784, 10);
  Value y = fc(x);
  ASSERT_TRUE(g.status().ok()) << g.status();
  EXPECT_EQ(y.shape(), (Shape{16, 10}));
  EXPECT_EQ(fc.weight().name(), "fc.weight");
  EXPECT_EQ(fc.bias().name(), "fc.bias");
  EXPECT_EQ(g.Parameters().size(), 2u);
}

TEST(GraphTest, RecordsFirstShapeErrorWithOpNodeNameAndShapes) {
  Graph g;
  Value x = g.Input("image", {16, 784});
  Value w = g.Parameter("w", {100, 10}, Initializer::Zeros());
  Value y = MatMul(x, w);
  EXPECT_FALSE(y.valid());
  Value z = Relu(y) + 1.0;  // later ops on the failed value add no new error
  EXPECT_FALSE(z.valid());
  ASSERT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument);
  std::string msg(g.status().message());
  EXPECT_NE(msg.find("op matmul"), std::string::npos) << msg;
  EXPECT_NE(msg.find("node 'matmul_"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[16, 784] x [100, 10]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'image' float[16, 784]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("expected [..., M, K] x [..., K, N]"), std::string::npos) << msg;
}

TEST(GraphTest, RejectsDuplicateParameterNames) {
  Graph g;
  g.Parameter("w", {2}, Initializer::Zeros());
  Value w2 = g.Parameter("w", {2}, Initializer::Zeros());
  EXPECT_FALSE(w2.valid());
  EXPECT_NE(g.status().message().find("parameter 'w' is defined twice"), std::string::npos);
}

TEST(GraphTest, RejectsNonPositiveInputDimensions) {
  Graph g;
  EXPECT_FALSE(g.Input("x", {4, 0}).valid());
  EXPECT_NE(g.status().message().find("input 'x'"), std::string::npos) << g.status();
}

TEST(GraphTest, RejectsValuesFromAnotherGraph) {
  Graph a, b;
  Value x = a.Input("x", {3});
  Value y = b.Input("y", {3});
  EXPECT_FALSE((x + y).valid());
  EXPECT_NE(a.status().message().find("belongs to another graph"), std::string::npos) << a.status();
}

TEST(GraphTest, NegativeAxesCountFromTheEnd) {
  Graph g;
  Value x = g.Input("x", {2, 3, 4});
  EXPECT_EQ(Sum(x, {-1}).shape(), (Shape{2, 3}));
  EXPECT_EQ(Max(x, -2, true).shape(), (Shape{2, 1, 4}));
  EXPECT_EQ(Transpose(x).shape(), (Shape{4, 3, 2}));
  EXPECT_EQ(Flatten(x).shape(), (Shape{2, 12}));
}

TEST(GraphTest, DumpsTextAndDot) {
  Graph g;
  Value x = g.Input("x", {4, 3});
  Value w = g.Parameter("w", {3, 2}, Initializer::XavierUniform());
  Value y = Relu(MatMul(x, w));
  std::string text = g.Dump({y.id()});
  EXPECT_NE(text.find("%0 x = input() : float[4, 3]"), std::string::npos) << text;
  EXPECT_NE(text.find("w = parameter() : float[3, 2] init=xavier_uniform"), std::string::npos)
      << text;
  EXPECT_NE(text.find("= relu(%2) : float[4, 2]"), std::string::npos) << text;
  std::string dot = g.ToDot({y.id()});
  EXPECT_EQ(dot.rfind("digraph kiln {", 0), 0u);
  EXPECT_NE(dot.find("n0 -> n2;"), std::string::npos) << dot;
  EXPECT_NE(dot.find("n1 -> n2;"), std::string::npos) << dot;
  EXPECT_NE(dot.find("n2 -> n3;"), std::string::npos) << dot;
}

TEST(GraphTest, AttributesOfAnotherOpAreAShapeError) {
  Graph g;
  Value x = g.Input("x", {1, 1, 4, 4});
  Value w = g.Input("w", {1, 1, 3, 3});
  EXPECT_FALSE(g.AddNode(OpKind::kConv2D, {x, w}, Attrs{Pool2dAttrs{2, 2, 0}}).valid());
  EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(g.status().message().find("expected attributes Conv2dAttrs, got Pool2dAttrs"),
            std::string::npos)
      << g.status();
}

TEST(GraphTest, AttributesCompareByEveryField) {
  ConvParams a = ConvParams::Same(1, 2);
  ConvParams b = a;
  EXPECT_EQ((Attrs{a}), (Attrs{b}));
  b.dilation_w = 2;
  EXPECT_NE((Attrs{a}), (Attrs{b}));
  EXPECT_NE((Attrs{ClipAttrs{0, 1}}), (Attrs{ClipAttrs{0, std::nextafter(1.0, 2.0)}}));
  EXPECT_NE((Attrs{ReduceAttrs{{0}, false}}), (Attrs{ReduceAttrs{{0}, true}}));
  EXPECT_EQ(Attrs{a}.Key(),
            "Conv2dAttrs{stride_h=1,stride_w=1,pad_h=2,pad_w=2,dilation_h=1,dilation_w=1}");
}

TEST(GraphTest, ReachableSkipsDeadNodes) {
  Graph g;
  Value x = g.Input("x", {3});
  Value dead = Exp(x);
  Value y = Relu(x);
  std::vector<int> r = g.Reachable({y.id()});
  EXPECT_EQ(r, (std::vector<int>{x.id(), y.id()}));
  EXPECT_TRUE(dead.valid());
}

TEST(GraphTest, SoftmaxCrossEntropyChecksLabelShape) {
  Graph g;
  Value logits = g.Input("logits", {8, 10});
  Value labels = g.Input("labels", {8}, DType::kInt32);
  EXPECT_EQ(SoftmaxCrossEntropy(logits, labels).shape(), (Shape{8}));
  EXPECT_EQ(AccuracyCount(logits, labels).shape(), (Shape{}));
  EXPECT_EQ(AccuracyCount(logits, labels).dtype(), DType::kInt32);
  Value bad_labels = g.Input("bad", {8}, DType::kFloat);
  EXPECT_FALSE(SoftmaxCrossEntropy(logits, bad_labels).valid());
  EXPECT_NE(g.status().message().find("expected int32 labels"), std::string::npos) << g.status();
}

TEST(GraphTest, LabelErrorsNameTheLossTheUserCalled) {
  Graph g;
  Value logits = g.Input("logits", {8, 10});
  Value labels = g.Input("labels", {8}, DType::kFloat);
  EXPECT_FALSE(AccuracyCount(logits, labels).valid());
  const std::string msg(g.status().message());
  EXPECT_NE(msg.find("AccuracyCount: expected int32 labels [8]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("got 'labels' float[8]"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("one_hot"), std::string::npos) << msg;
}

TEST(GraphTest, ShapeErrorsNameTheLayerAndTheNode) {
  Graph g;
  Value x = g.Input("image", {16, 784});
  Value y = Linear(g, "fc", 780, 10)(x);
  EXPECT_FALSE(y.valid());
  std::string msg(g.status().message());
  EXPECT_EQ(msg.find("Linear 'fc': op matmul (node 'matmul_"), 0u) << msg;

  Graph h;
  Value img = h.Input("image", {2, 1, 28, 28});
  Value c1 = Conv2D(h, "conv1", 1, 20, 5)(img);
  Value c2 = Conv2D(h, "conv2", 10, 20, 5)(c1);  // expects 10 input channels, gets 20
  EXPECT_TRUE(c1.valid());
  EXPECT_FALSE(c2.valid());
  msg = std::string(h.status().message());
  EXPECT_EQ(msg.find("Conv2D 'conv2': op conv2d (node '"), 0u) << msg;

  Graph k;
  Value feat = k.Input("x", {4, 3});
  EXPECT_FALSE(BatchNorm(k, "bn", 5)(feat).valid());
  EXPECT_NE(k.status().message().find("BatchNorm 'bn': expected input [N, 5, ...]"),
            std::string::npos)
      << k.status();
}

TEST(GraphTest, AnInvalidValueKeepsItsGraphAndPassesTheFirstErrorOn) {
  Graph g;
  Value x = g.Input("x", {4, 3});
  Value bad = MatMul(x, x);
  ASSERT_FALSE(bad.valid());
  EXPECT_EQ(bad.graph(), &g);
  EXPECT_EQ(g.FailureOf(bad).find("op matmul (node 'matmul_"), 0u) << g.FailureOf(bad);
  Value later = Sum(Relu(bad) * 2.0);
  EXPECT_FALSE(later.valid());
  EXPECT_EQ(later.graph(), &g);
  EXPECT_EQ(g.FailureOf(later), g.FailureOf(bad));  // the op that failed first
}

TEST(GraphTest, AnEmptyOperandIsAnError) {
  Graph g;
  Value x = g.Input("x", {3});
  EXPECT_FALSE((x + Value()).valid());
  EXPECT_NE(g.status().message().find("input 1 is a default-constructed Value"), std::string::npos)
      << g.status();
  Graph h;
  Value logits = h.Input("logits", {2, 3});
  EXPECT_FALSE(SoftmaxCrossEntropy(logits, Value()).valid());
  EXPECT_FALSE(h.status().ok());
}

TEST(GraphDeathTest, ReadingAnInvalidValueEndsTheProgramNamingTheFailedOp) {
  Graph g;
  Value x = g.Input("image", {16, 784});
  Value y = Linear(g, "fc", 780, 10)(x);
  ASSERT_FALSE(y.valid());
  EXPECT_DEATH((void)y.shape(),
               "invalid Value was read: it is the result of the failed Linear 'fc': op matmul "
               "\\(node 'matmul_[0-9]+'\\); the graph's first error: INVALID_ARGUMENT: Linear "
               "'fc': op matmul");
  EXPECT_DEATH((void)y.dtype(), "failed Linear 'fc': op matmul");
  EXPECT_DEATH((void)Value().name(), "default-constructed Value was read");
}

// The attention building blocks refuse what they cannot compute, naming the layer and the shapes.
TEST(GraphTest, TransposeLast2SwapsTheLastTwoAxesOnly) {
  Graph g;
  Value x = TransposeLast2(g.Input("x", {2, 3, 4, 5}));
  ASSERT_TRUE(x.valid()) << g.status();
  EXPECT_EQ(x.shape(), (Shape{2, 3, 5, 4}));
  EXPECT_FALSE(TransposeLast2(g.Input("v", {7})).valid());
  EXPECT_NE(g.status().ToString().find("TransposeLast2 needs rank >= 2, got 'v' [7]"),
            std::string::npos)
      << g.status();
}

TEST(GraphTest, AttentionRefusesBadHeadsAndShapes) {
  {
    Graph g;
    MultiHeadAttention attn(g, "attn", 64, 5);
    EXPECT_FALSE(attn(g.Input("x", {2, 17, 64})).valid());
    EXPECT_NE(g.status().ToString().find("MultiHeadAttention 'attn'"), std::string::npos)
        << g.status();
    EXPECT_NE(g.status().ToString().find("expected heads >= 1 dividing dim 64, got heads = 5"),
              std::string::npos)
        << g.status();
  }
  {
    Graph g;
    MultiHeadAttention attn(g, "attn", 64, 4);
    EXPECT_FALSE(attn(g.Input("x", {2, 17, 32})).valid());
    EXPECT_NE(g.status().ToString().find("expected input [B, T, 64], got 'x' [2, 17, 32]"),
              std::string::npos)
        << g.status();
  }
  {
    Graph g;
    Value y = MatMul(g.Input("q", {2, 4, 17, 16}), g.Input("k", {2, 3, 16, 17}));
    EXPECT_FALSE(y.valid());
    EXPECT_NE(g.status().ToString().find("batch axis 1 differs"), std::string::npos) << g.status();
  }
}

TEST(GraphTest, SummaryListsLayersShapesAndParameterCounts) {
  Graph g;
  Value x = Reshape(g.Input("image", {8, 784}), {8, 1, 28, 28});
  Conv2D::Options same;
  same.padding = 2;
  Conv2D conv(g, "conv1", 1, 20, 5, same);
  Value h = Flatten(MaxPool2d(Relu(conv(x)), 2));
  Value y = Linear(g, "fc", 20 * 14 * 14, 10)(Dropout(h, 0.5));
  ASSERT_TRUE(g.status().ok()) << g.status();
  EXPECT_EQ(y.shape(), (Shape{8, 10}));
  std::string s = g.Summary();
  EXPECT_NE(s.find("conv1 (Conv2D)"), std::string::npos) << s;
  EXPECT_NE(s.find("[8, 20, 28, 28]"), std::string::npos) << s;
  EXPECT_NE(s.find("(MaxPool2D)"), std::string::npos) << s;
  EXPECT_NE(s.find("(Flatten)"), std::string::npos) << s;
  EXPECT_NE(s.find("(Dropout)"), std::string::npos) << s;
  EXPECT_NE(s.find("fc (Linear)"), std::string::npos) << s;
  EXPECT_NE(s.find("Total params: " + std::to_string(20 * 25 + 20 + 3920 * 10 + 10)),
            std::string::npos)
      << s;
}

TEST(GraphTest, EvaluationGraphsSkipDropoutAndUseRunningStatistics) {
  Graph train, eval(Mode::kEval);
  for (Graph* g : {&train, &eval}) {
    Value x = g->Input("x", {4, 6});
    BatchNorm bn(*g, "bn", 6);
    Dropout(bn(x), 0.5);
  }
  EXPECT_EQ(train.buffer_updates().size(), 2u);
  EXPECT_TRUE(eval.buffer_updates().empty());
  bool train_has_dropout = false, eval_has_dropout = false;
  for (const Node& n : train.nodes()) train_has_dropout |= n.op == OpKind::kDropout;
  for (const Node& n : eval.nodes()) eval_has_dropout |= n.op == OpKind::kDropout;
  EXPECT_TRUE(train_has_dropout);
  EXPECT_FALSE(eval_has_dropout);
  EXPECT_TRUE(eval.mode_dependent());
}

}  // namespace
}  // namespace kiln
