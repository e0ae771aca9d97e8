// Op cases for the building blocks of residual networks and vision transformers, each a composite
// of primitives (docs/OPS.md): softmax on an inner axis, global average pooling, a class token by
// concatenation, learned position embeddings, a residual add, and multi-head attention scaled by
// 1/sqrt(d) with its heads as views.
#include <cmath>

#include "tests/ops/op_check.h"

namespace kiln::testing {
namespace {

using V = std::vector<Value>;
using N = std::vector<Nd>;

double Sum2(double a, double b) { return a + b; }

Nd SwapLast(const Nd& x) {
  std::vector<int64_t> perm;
  for (size_t i = 0; i < x.shape.size(); ++i) perm.push_back(static_cast<int64_t>(i));
  std::swap(perm[perm.size() - 1], perm[perm.size() - 2]);
  return TransposedRef(x, perm);
}

Nd SoftmaxAxis(const Nd& x, int64_t axis) {
  Nd m = ReduceRef(x, {axis}, true, -INFINITY, [](double a, double b) { return std::max(a, b); });
  Nd e = Zip(x, m, [](double a, double b) { return std::exp(a - b); });
  Nd s = ReduceRef(e, {axis}, true, 0, Sum2);
  return Zip(e, s, [](double a, double b) { return a / b; });
}

// softmax(q k^T / sqrt(d)) v over the last two axes, in float64.
Nd AttentionRef(const Nd& q, const Nd& k, const Nd& v) {
  const double scale = 1 / std::sqrt(static_cast<double>(q.shape.back()));
  Nd s = Map(MatMulRef(q, SwapLast(k)), [scale](double a) { return a * scale; });
  return MatMulRef(SoftmaxAxis(s, -1), v);
}

// [B, T, D] x [D, D] -> [B, T, D], one weight for every row.
Nd ProjectRef(const Nd& x, const Nd& w) {
  Nd flat = x;
  flat.shape = {x.shape[0] * x.shape[1], x.shape[2]};
  Nd y = MatMulRef(flat, w);
  y.shape = {x.shape[0], x.shape[1], w.shape[1]};
  return y;
}

}  // namespace

std::vector<OpCase> MakeBlockCases() {
  std::vector<OpCase> c;
  c.push_back({"softmax_inner_axis",
               {OpKind::kExp, OpKind::kMax, OpKind::kSum, OpKind::kDiv},
               {F({2, 5, 3}, -3, 3)},
               [](const V& x) { return Softmax(x[0], 1); },
               [](const N& x) { return SoftmaxAxis(x[0], 1); }});
  c.push_back(
      {"global_avg_pool",
       {OpKind::kSum, OpKind::kMul},
       {F({2, 3, 4, 5})},
       [](const V& x) { return GlobalAvgPool2d(x[0]); },
       [](const N& x) {
         return Map(ReduceRef(x[0], {2, 3}, false, 0, Sum2), [](double a) { return a / 20; });
       },
       "",
       [](Graph& g) {
         return GlobalAvgPool2d(g.Input("x", {2, 3, 4}));
       },
       "expected input [N, C, H, W]"});
  // tokens [B, T, D]: a class token [1, 1, D] broadcast over the batch and put first, then a
  // learned position embedding [1, T + 1, D] added to every example.
  c.push_back(
      {"class_token_and_position_embedding",
       {OpKind::kConcat, OpKind::kBroadcastTo, OpKind::kAdd},
       {F({3, 4, 5}), F({1, 1, 5}), F({1, 5, 5})},
       [](const V& x) {
         Value cls = BroadcastTo(x[1], {3, 1, 5});
         return Concat({cls, x[0]}, 1) + x[2];
       },
       [](const N& x) {
         Nd y = Nd::Zeros({3, 5, 5});
         ForEachIndex(y.shape, [&](const std::vector<int64_t>& i) {
           const double token = i[1] == 0 ? x[1][{0, 0, i[2]}] : x[0][{i[0], i[1] - 1, i[2]}];
           y[i] = token + x[2][{0, i[1], i[2]}];
         });
         return y;
       }});
  // x + relu(x W): the identity path and the branch both carry gradient to x.
  c.push_back(
      {"residual_add",
       {OpKind::kAdd, OpKind::kRelu, OpKind::kMatMul},
       {F({4, 6}), F({6, 6})},
       [](const V& x) { return x[0] + Relu(MatMul(x[0], x[1])); },
       [](const N& x) {
         return Zip(x[0], Map(MatMulRef(x[0], x[1]), [](double a) { return a > 0 ? a : 0; }), Sum2);
       }});
  c.push_back({"scaled_dot_product_attention",
               {OpKind::kMatMul, OpKind::kTranspose, OpKind::kExp},
               {F({2, 3, 5, 4}, -2, 2), F({2, 3, 6, 4}, -2, 2), F({2, 3, 6, 7})},
               [](const V& x) { return ScaledDotProductAttention(x[0], x[1], x[2]); },
               [](const N& x) { return AttentionRef(x[0], x[1], x[2]); },
               "",
               [](Graph& g) {
                 return ScaledDotProductAttention(g.Input("q", {2, 5, 4}), g.Input("k", {2, 6, 3}),
                                                  g.Input("v", {2, 6, 7}));
               },
               "expected q [..., Tq, d], k [..., Tk, d], v [..., Tk, dv]"});
  // Multi-head attention as MultiHeadAttention composes it, with the projections as inputs so the
  // reference sees them: x [B, T, D] projected, split into heads as [B, H, T, D/H] views, attended
  // per head, merged back and projected out.
  c.push_back(
      {"multi_head_attention",
       {OpKind::kMatMul, OpKind::kTranspose, OpKind::kReshape},
       {F({2, 5, 8}), F({8, 8}), F({8, 8}), F({8, 8}), F({8, 8})},
       [](const V& x) {
         auto heads = [](Value y) { return Transpose(Reshape(y, {2, 5, 2, 4}), {0, 2, 1, 3}); };
         Value o = ScaledDotProductAttention(heads(MatMul(x[0], x[1])), heads(MatMul(x[0], x[2])),
                                             heads(MatMul(x[0], x[3])));
         return MatMul(Reshape(Transpose(o, {0, 2, 1, 3}), {2, 5, 8}), x[4]);
       },
       [](const N& x) {
         auto heads = [](Nd y) {
           y.shape = {2, 5, 2, 4};
           return TransposedRef(y, {0, 2, 1, 3});
         };
         Nd o = AttentionRef(heads(ProjectRef(x[0], x[1])), heads(ProjectRef(x[0], x[2])),
                             heads(ProjectRef(x[0], x[3])));
         Nd merged = TransposedRef(o, {0, 2, 1, 3});
         merged.shape = {2, 5, 8};
         return ProjectRef(merged, x[4]);
       }});
  return c;
}

}  // namespace kiln::testing
