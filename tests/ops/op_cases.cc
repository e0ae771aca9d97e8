// The op test table: every primitive of dsl/ops.def appears in at least one case (the coverage
// test in ops_test.cc enforces it), and every composite of dsl/api.h has a case of its own.
#include <cmath>

#include "tests/ops/op_check.h"

namespace kiln::testing {
namespace {

using V = std::vector<Value>;
using N = std::vector<Nd>;

Nd Softmax(const Nd& x) {
  Nd m = ReduceRef(x, {-1}, true, -INFINITY, [](double a, double b) { return std::max(a, b); });
  Nd e = Zip(x, m, [](double a, double b) { return std::exp(a - b); });
  Nd s = ReduceRef(e, {-1}, true, 0, [](double a, double b) { return a + b; });
  return Zip(e, s, [](double a, double b) { return a / b; });
}

Nd ArgMaxRows(const Nd& x) {
  Nd out = Nd::Zeros({x.shape[0]});
  for (int64_t i = 0; i < x.shape[0]; ++i) {
    int64_t best = 0;
    for (int64_t j = 1; j < x.shape[1]; ++j) {
      if (x[{i, j}] > x[{i, best}]) best = j;
    }
    out.v[i] = static_cast<double>(best);
  }
  return out;
}

Nd Reshaped(Nd x, Shape s) {
  x.shape = std::move(s);
  return x;
}

double Sum2(double a, double b) { return a + b; }
double Max2(double a, double b) { return std::max(a, b); }

std::vector<OpCase> MakeCases() {
  std::vector<OpCase> c;
  // ---- elementwise arithmetic with broadcasting ----
  c.push_back({"add_broadcast_row",
               {OpKind::kAdd},
               {F({3, 4}), F({4})},
               [](const V& x) { return x[0] + x[1]; },
               [](const N& x) { return Zip(x[0], x[1], Sum2); },
               "",
               [](Graph& g) {
                 return g.Input("a", {3, 4}) + g.Input("b", {5});
               },
               "do not broadcast"});
  c.push_back({"add_same_shape",
               {OpKind::kAdd},
               {F({2, 3, 5}), F({2, 3, 5})},
               [](const V& x) { return x[0] + x[1]; },
               [](const N& x) { return Zip(x[0], x[1], Sum2); }});
  c.push_back({"sub_broadcast_column",
               {OpKind::kSub},
               {F({3, 4}), F({3, 1})},
               [](const V& x) { return x[0] - x[1]; },
               [](const N& x) { return Zip(x[0], x[1], [](double a, double b) { return a - b; }); },
               "",
               [](Graph& g) {
                 return g.Input("a", {3, 4}) - g.Input("b", {3, 4}, DType::kInt32);
               },
               "expected float inputs"});
  c.push_back(
      {"mul_broadcast_both",
       {OpKind::kMul},
       {F({2, 3, 1}), F({3, 4})},
       [](const V& x) { return x[0] * x[1]; },
       [](const N& x) { return Zip(x[0], x[1], [](double a, double b) { return a * b; }); }});
  // Trailing axes of extent 1: the axis before them is the vectorized one (with a tail).
  c.push_back(
      {"mul_column_vector",
       {OpKind::kMul},
       {F({40, 1}), F({40, 1})},
       [](const V& x) { return x[0] * x[1]; },
       [](const N& x) { return Zip(x[0], x[1], [](double a, double b) { return a * b; }); }});
  c.push_back(
      {"mul_columns_of_a_batch",
       {OpKind::kMul},
       {F({3, 20, 1}), F({3, 20, 1})},
       [](const V& x) { return x[0] * x[1]; },
       [](const N& x) { return Zip(x[0], x[1], [](double a, double b) { return a * b; }); }});
  c.push_back(
      {"div_broadcast",
       {OpKind::kDiv},
       {F({3, 4}), F({4}, 0.5, 2)},
       [](const V& x) { return x[0] / x[1]; },
       [](const N& x) { return Zip(x[0], x[1], [](double a, double b) { return a / b; }); }});
  c.push_back({"scalar_arithmetic",
               {OpKind::kConstant, OpKind::kMul, OpKind::kAdd, OpKind::kDiv},
               {F({2, 5})},
               [](const V& x) { return (x[0] * 2.5 + 1.0) / 4.0 - 3.0; },
               [](const N& x) { return Map(x[0], [](double a) { return (a * 2.5 + 1) / 4 - 3; }); },
               "",
               [](Graph& g) {
                 return g.Constant(1.0, {2, 0});
               },
               "expected positive dimensions"});
  // ---- unary ----
  c.push_back({"relu",
               {OpKind::kRelu},
               {F({4, 5})},
               [](const V& x) { return Relu(x[0]); },
               [](const N& x) { return Map(x[0], [](double a) { return a > 0 ? a : 0; }); },
               "",
               [](Graph& g) { return Relu(g.Input("l", {3}, DType::kInt32)); },
               "expected a float input"});
  c.push_back(
      {"sigmoid",
       {OpKind::kSigmoid},
       {F({3, 6}, -4, 4)},
       [](const V& x) { return Sigmoid(x[0]); },
       [](const N& x) { return Map(x[0], [](double a) { return 1 / (1 + std::exp(-a)); }); }});
  // erf over its whole range: the float64 series to 1e-12, float32's approximation to 1e-5.
  c.push_back({"erf",
               {OpKind::kErf},
               {F({4, 9}, -6.5, 6.5)},
               [](const V& x) { return Erf(x[0]); },
               [](const N& x) { return Map(x[0], [](double a) { return std::erf(a); }); }});
  // Activations composed of primitives (dsl/api.h, docs/OPS.md).
  c.push_back({"leaky_relu",
               {OpKind::kRelu, OpKind::kSub},
               {F({4, 5})},
               [](const V& x) { return LeakyRelu(x[0], 0.1); },
               [](const N& x) { return Map(x[0], [](double a) { return a > 0 ? a : 0.1 * a; }); }});
  c.push_back({"elu",
               {OpKind::kRelu, OpKind::kExp},
               {F({4, 5}, -3, 3)},
               [](const V& x) { return Elu(x[0], 0.7); },
               [](const N& x) {
                 return Map(x[0], [](double a) { return a > 0 ? a : 0.7 * (std::exp(a) - 1); });
               }});
  c.push_back(
      {"silu",
       {OpKind::kSigmoid, OpKind::kMul},
       {F({3, 7}, -5, 5)},
       [](const V& x) { return Silu(x[0]); },
       [](const N& x) { return Map(x[0], [](double a) { return a / (1 + std::exp(-a)); }); }});
  c.push_back({"gelu",
               {OpKind::kErf, OpKind::kMul},
               {F({3, 7}, -5, 5)},
               [](const V& x) { return Gelu(x[0]); },
               [](const N& x) {
                 return Map(x[0],
                            [](double a) { return 0.5 * a * (1 + std::erf(a / std::sqrt(2.0))); });
               }});
  c.push_back({"gelu_tanh",
               {OpKind::kTanh, OpKind::kMul},
               {F({3, 7}, -5, 5)},
               [](const V& x) { return Gelu(x[0], GeluApproximation::kTanh); },
               [](const N& x) {
                 return Map(x[0], [](double a) {
                   return 0.5 * a *
                          (1 + std::tanh(std::sqrt(2 / M_PI) * (a + 0.044715 * a * a * a)));
                 });
               }});
  // Float32 tanh is Kiln's own on CPUs (dsl/ops/elementwise.cc): both of its branches (|x| below
  // and above 0.5) and the saturated range, to about 8 float32 ulps.
  OpCase tanh_case{"tanh",
                   {OpKind::kTanh},
                   {F({20, 50}, -9, 9)},
                   [](const V& x) { return Tanh(x[0]); },
                   [](const N& x) { return Map(x[0], [](double a) { return std::tanh(a); }); }};
  tanh_case.float32_rtol = 1e-6;
  tanh_case.float32_atol = 1e-7;
  c.push_back(tanh_case);
  c.push_back({"exp",
               {OpKind::kExp},
               {F({7}, -2, 2)},
               [](const V& x) { return Exp(x[0]); },
               [](const N& x) { return Map(x[0], [](double a) { return std::exp(a); }); }});
  c.push_back({"log",
               {OpKind::kLog},
               {F({2, 7}, 0.5, 3)},
               [](const V& x) { return Log(x[0]); },
               [](const N& x) { return Map(x[0], [](double a) { return std::log(a); }); }});
  c.push_back({"square",
               {OpKind::kSquare},
               {F({3, 3})},
               [](const V& x) { return Square(x[0]); },
               [](const N& x) { return Map(x[0], [](double a) { return a * a; }); }});
  c.push_back({"sqrt",
               {OpKind::kSqrt},
               {F({3, 3}, 0.5, 4)},
               [](const V& x) { return Sqrt(x[0]); },
               [](const N& x) { return Map(x[0], [](double a) { return std::sqrt(a); }); }});
  c.push_back({"step",
               {OpKind::kStep},
               {F({4, 4})},
               [](const V& x) { return Step(x[0]); },
               [](const N& x) { return Map(x[0], [](double a) { return a > 0 ? 1.0 : 0.0; }); },
               "Heaviside step: zero derivative almost everywhere, none at 0 (no VJP by design)"});
  c.push_back({"equal_row_max",
               {OpKind::kEqual, OpKind::kMax},
               {F({4, 6})},
               [](const V& x) { return Equal(x[0], Max(x[0], 1, true)); },
               [](const N& x) {
                 Nd m = ReduceRef(x[0], {1}, true, -INFINITY, Max2);
                 return Zip(x[0], m, [](double a, double b) { return a == b ? 1.0 : 0.0; });
               },
               "comparison: piecewise constant (no VJP by design)",
               [](Graph& g) { return Equal(g.Input("a", {3}), g.Input("b", {3}, DType::kInt32)); },
               "expected inputs of one dtype"});
  c.push_back({"round_to_int",
               {OpKind::kRoundToInt},
               {F({12}, -2, 12)},
               [](const V& x) { return RoundToInt(x[0], 0, 9); },
               [](const N& x) {
                 return Map(x[0], [](double a) { return std::clamp(std::nearbyint(a), 0.0, 9.0); });
               },
               "integer output",
               [](Graph& g) { return RoundToInt(g.Input("a", {3}), 5, 1); },
               "lo <= hi"});
  c.push_back({"one_hot",
               {OpKind::kOneHot},
               {I({6}, 0, 12)},
               [](const V& x) { return OneHot(x[0], 10); },
               [](const N& x) {
                 Nd y = Nd::Zeros({6, 10});
                 for (int64_t i = 0; i < 6; ++i) {
                   if (x[0].v[i] < 10) y[{i, static_cast<int64_t>(x[0].v[i])}] = 1;
                 }
                 return y;
               },
               "integer input",
               [](Graph& g) { return OneHot(g.Input("a", {3}), 10); },
               "expected int32 labels"});
  c.push_back({"to_float",
               {OpKind::kToFloat},
               {I({2, 5}, -3, 9)},
               [](const V& x) { return ToFloat(x[0]); },
               [](const N& x) { return x[0]; },
               "integer input",
               [](Graph& g) { return ToFloat(g.Input("a", {3})); },
               "expected an int32 or uint8 input"});
  // ---- shapes ----
  c.push_back({"reshape_split",
               {OpKind::kReshape},
               {F({2, 12})},
               [](const V& x) {
                 return Reshape(x[0], {2, 3, 4});
               },
               [](const N& x) {
                 return Reshaped(x[0], {2, 3, 4});
               },
               "",
               [](Graph& g) {
                 return Reshape(g.Input("a", {2, 3}), {4, 2});
               },
               "6 elements"});
  c.push_back({"reshape_merge",
               {OpKind::kReshape},
               {F({2, 3, 4})},
               [](const V& x) {
                 return Reshape(x[0], {6, 4});
               },
               [](const N& x) {
                 return Reshaped(x[0], {6, 4});
               }});
  c.push_back({"flatten_mixed",
               {OpKind::kReshape},
               {F({2, 3, 4, 5})},
               [](const V& x) {
                 return Flatten(Reshape(x[0], {2, 4, 3, 5}));
               },
               [](const N& x) {
                 return Reshaped(x[0], {2, 60});
               }});
  c.push_back({"transpose_3d",
               {OpKind::kTranspose},
               {F({2, 3, 4})},
               [](const V& x) {
                 return Transpose(x[0], {2, 0, 1});
               },
               [](const N& x) {
                 return TransposedRef(x[0], {2, 0, 1});
               },
               "",
               [](Graph& g) {
                 return Transpose(g.Input("a", {2, 3, 4}), {0, 0, 1});
               },
               "expected a permutation"});
  c.push_back({"broadcast_to",
               {OpKind::kBroadcastTo},
               {F({3, 1})},
               [](const V& x) {
                 return BroadcastTo(x[0], {2, 3, 4});
               },
               [](const N& x) {
                 return Zip(x[0], Nd::Zeros({2, 3, 4}), Sum2);
               },
               "",
               [](Graph& g) {
                 return BroadcastTo(g.Input("a", {3, 2}), {3, 4});
               },
               "do not broadcast"});
  // ---- reductions ----
  c.push_back({"sum_middle_axis",
               {OpKind::kSum},
               {F({3, 4, 5})},
               [](const V& x) { return Sum(x[0], {1}); },
               [](const N& x) { return ReduceRef(x[0], {1}, false, 0, Sum2); },
               "",
               [](Graph& g) {
                 return Sum(g.Input("a", {2, 3}), {2});
               },
               "out of range"});
  c.push_back({"sum_all",
               {OpKind::kSum},
               {F({3, 4, 5})},
               [](const V& x) { return Sum(x[0]); },
               [](const N& x) { return ReduceRef(x[0], {}, false, 0, Sum2); }});
  c.push_back({"sum_keepdims_outer_inner",
               {OpKind::kSum},
               {F({3, 4, 20})},
               [](const V& x) {
                 return Sum(x[0], {0, 2}, true);
               },
               [](const N& x) {
                 return ReduceRef(x[0], {0, 2}, true, 0, Sum2);
               }});
  // Large enough (>= 65536 elements, batch and innermost axes reduced) for the two-stage sum.
  c.push_back({"sum_chunked_bias_gradient_shape",
               {OpKind::kSum},
               {F({12, 3, 50, 45})},
               [](const V& x) {
                 return Sum(x[0], {0, 2, 3});
               },
               [](const N& x) {
                 return ReduceRef(x[0], {0, 2, 3}, false, 0, Sum2);
               }});
  c.push_back({"sum_chunked_keepdims_middle_axis_kept",
               {OpKind::kSum},
               {F({10, 5, 40, 41})},
               [](const V& x) {
                 return Sum(x[0], {0, 1, 3}, true);
               },
               [](const N& x) {
                 return ReduceRef(x[0], {0, 1, 3}, true, 0, Sum2);
               }});
  // Sums over the innermost axis whose rows fill vectors (a layer norm's statistics): lanes summed
  // in a tree; the second large enough for tasks of rows.
  c.push_back({"sum_rows_of_vectors_keepdims",
               {OpKind::kSum},
               {F({3, 5, 64})},
               [](const V& x) { return Sum(x[0], {2}, true); },
               [](const N& x) { return ReduceRef(x[0], {2}, true, 0, Sum2); }});
  c.push_back({"sum_rows_of_vectors_parallel",
               {OpKind::kSum},
               {F({1100, 64})},
               [](const V& x) { return Sum(x[0], {1}); },
               [](const N& x) { return ReduceRef(x[0], {1}, false, 0, Sum2); }});
  c.push_back({"mean",
               {OpKind::kSum, OpKind::kMul},
               {F({5, 3})},
               [](const V& x) { return Mean(x[0], {0}); },
               [](const N& x) {
                 return Map(ReduceRef(x[0], {0}, false, 0, Sum2), [](double a) { return a / 5; });
               }});
  c.push_back({"max_rows",
               {OpKind::kMax},
               {F({4, 7})},
               [](const V& x) { return Max(x[0], 1); },
               [](const N& x) { return ReduceRef(x[0], {1}, false, -INFINITY, Max2); },
               "",
               [](Graph& g) { return Max(g.Input("a", {4}), 3); },
               "out of range"});
  c.push_back({"max_keepdims_wide",
               {OpKind::kMax},
               {F({5, 33})},
               [](const V& x) { return Max(x[0], 0, true); },
               [](const N& x) { return ReduceRef(x[0], {0}, true, -INFINITY, Max2); }});
  c.push_back({"argmax",
               {OpKind::kArgMax},
               {F({5, 7})},
               [](const V& x) { return ArgMax(x[0], 1); },
               [](const N& x) { return ArgMaxRows(x[0]); },
               "integer output"});
  // One row past a whole vector of rows (17 = 16 + 1, AVX-512; the portable target's is 9, in
  // accuracy_count): Halide 14 vectorizes a Tuple update over such an extent without its last
  // row unless the schedule avoids that width (LowerCtx::ScheduleMaterialized).
  c.push_back({"argmax_one_row_past_a_vector",
               {OpKind::kArgMax},
               {F({17, 10})},
               [](const V& x) { return ArgMax(x[0], 1); },
               [](const N& x) { return ArgMaxRows(x[0]); },
               "integer output"});
  // ---- matmul: shapes that hit full tiles, edge tiles and the matrix-vector path ----
  auto mm = [](const V& x) { return MatMul(x[0], x[1]); };
  auto mm_ref = [](const N& x) { return MatMulRef(x[0], x[1]); };
  auto mm_bad = [](Graph& g) { return MatMul(g.Input("a", {2, 3}), g.Input("b", {4, 5})); };
  c.push_back({"matmul_small",
               {OpKind::kMatMul},
               {F({5, 7}), F({7, 3})},
               mm,
               mm_ref,
               "",
               mm_bad,
               "inner dimensions differ"});
  c.push_back({"matmul_edge_tiles", {OpKind::kMatMul}, {F({33, 20}), F({20, 37})}, mm, mm_ref});
  c.push_back({"matmul_matrix_vector", {OpKind::kMatMul}, {F({16, 50}), F({50, 1})}, mm, mm_ref});
  // K a multiple of the vector width: partial sums in several vectors (7 for K = 112 at 16 or 8
  // lanes, 4 or 8 for K = 64), then lane by lane, then across the lanes.
  c.push_back({"matmul_matrix_vector_lane_sums",
               {OpKind::kMatMul},
               {F({6, 112}), F({112, 1})},
               mm,
               mm_ref});
  c.push_back(
      {"matmul_matrix_vector_pow2", {OpKind::kMatMul}, {F({5, 64}), F({64, 1})}, mm, mm_ref});
  // A long reduction into few outputs (k = 300, not a multiple of 32): on a GPU, k is summed in
  // chunks in parallel (LowerCtx::GpuSplitReduction), the last one ragged; its gradients
  // include one over the 6 rows.
  c.push_back(
      {"matmul_long_reduction", {OpKind::kMatMul}, {F({6, 300}), F({300, 10})}, mm, mm_ref});
  c.push_back({"matmul_parallel_tiles",
               {OpKind::kMatMul, OpKind::kParameter},
               {F({64, 96}), P({96, 40})},
               mm,
               mm_ref});
  c.push_back({"matmul_transposed_inputs",
               {OpKind::kMatMul, OpKind::kTranspose},
               {F({9, 4}), F({6, 9})},
               [](const V& x) { return MatMul(Transpose(x[0]), Transpose(x[1])); },
               [](const N& x) {
                 return MatMulRef(TransposedRef(x[0], {1, 0}), TransposedRef(x[1], {1, 0}));
               }});
  // Batched: rank 3 and rank 4 over equal leading axes, either operand a transpose of its last two
  // axes (attention's Q K^T and the weight gradient's A^T dC), and a weight applied to every row.
  auto swap_last = [](const Nd& x) {
    std::vector<int64_t> perm;
    for (size_t i = 0; i < x.shape.size(); ++i) perm.push_back(static_cast<int64_t>(i));
    std::swap(perm[perm.size() - 1], perm[perm.size() - 2]);
    return TransposedRef(x, perm);
  };
  c.push_back({"matmul_batched_rank3",
               {OpKind::kMatMul},
               {F({3, 5, 7}), F({3, 7, 4})},
               mm,
               mm_ref,
               "",
               [](Graph& g) {
                 return MatMul(g.Input("a", {3, 5, 7}), g.Input("b", {2, 7, 4}));
               },
               "batch axis 0 differs"});
  c.push_back({"matmul_batched_rank4_transposed_b",
               {OpKind::kMatMul, OpKind::kTranspose},
               {F({2, 3, 5, 8}), F({2, 3, 6, 8})},
               [](const V& x) {
                 return MatMul(x[0], Transpose(x[1], {0, 1, 3, 2}));
               },
               [swap_last](const N& x) { return MatMulRef(x[0], swap_last(x[1])); },
               "",
               [](Graph& g) {
                 return MatMul(g.Input("a", {2, 3, 5, 8}), g.Input("b", {3, 8, 6}));
               },
               "of the same rank >= 2"});
  c.push_back({"matmul_batched_transposed_a",
               {OpKind::kMatMul, OpKind::kTranspose},
               {F({2, 2, 7, 5}), F({2, 2, 7, 9})},
               [](const V& x) {
                 return MatMul(Transpose(x[0], {0, 1, 3, 2}), x[1]);
               },
               [swap_last](const N& x) { return MatMulRef(swap_last(x[0]), x[1]); }});
  // Enough products for the batch loop to run in parallel.
  c.push_back({"matmul_batched_parallel",
               {OpKind::kMatMul, OpKind::kParameter},
               {F({8, 32, 64}), P({8, 64, 32})},
               mm,
               mm_ref});
  c.push_back({"matmul_rank3_times_weight",
               {OpKind::kMatMul, OpKind::kReshape},
               {F({2, 5, 6}), F({6, 3})},
               mm,
               [](const N& x) {
                 return Reshaped(MatMulRef(Reshaped(x[0], {10, 6}), x[1]), {2, 5, 3});
               }});
  // ---- composites ----
  c.push_back({"linear_composite",
               {OpKind::kMatMul, OpKind::kAdd},
               {F({4, 6}), F({6, 3}), F({3})},
               [](const V& x) { return MatMul(x[0], x[1]) + x[2]; },
               [](const N& x) { return Zip(MatMulRef(x[0], x[1]), x[2], Sum2); }});
  c.push_back({"softmax",
               {OpKind::kExp, OpKind::kMax, OpKind::kSum, OpKind::kDiv},
               {F({4, 10}, -3, 3)},
               [](const V& x) { return Softmax(x[0]); },
               [](const N& x) { return Softmax(x[0]); }});
  c.push_back(
      {"log_softmax",
       {OpKind::kLog, OpKind::kExp, OpKind::kMax},
       {F({4, 10}, -3, 3)},
       [](const V& x) { return LogSoftmax(x[0]); },
       [](const N& x) { return Map(Softmax(x[0]), [](double a) { return std::log(a); }); }});
  c.push_back({"square_error_cost",
               {OpKind::kSquare, OpKind::kSub},
               {F({6, 1}), F({6, 1})},
               [](const V& x) { return SquareErrorCost(x[0], x[1]); },
               [](const N& x) {
                 return Zip(x[0], x[1], [](double a, double b) { return (a - b) * (a - b); });
               }});
  c.push_back(
      {"softmax_cross_entropy",
       {OpKind::kOneHot, OpKind::kLog, OpKind::kSum},
       {F({6, 10}, -3, 3), I({6}, 0, 10)},
       [](const V& x) { return SoftmaxCrossEntropy(x[0], x[1]); },
       [](const N& x) {
         Nd p = Softmax(x[0]);
         Nd y = Nd::Zeros({6});
         for (int64_t i = 0; i < 6; ++i)
           y.v[i] = -std::log(p[{i, static_cast<int64_t>(x[1].v[i])}]);
         return y;
       },
       "",
       [](Graph& g) {
         return SoftmaxCrossEntropy(g.Input("l", {6, 10}), g.Input("y", {5}, DType::kInt32));
       },
       "do not broadcast"});
  c.push_back(
      {"softmax_cross_entropy_label_smoothing",
       {OpKind::kOneHot, OpKind::kLog, OpKind::kSum},
       {F({6, 10}, -3, 3), I({6}, 0, 10)},
       [](const V& x) { return SoftmaxCrossEntropy(x[0], x[1], 0.2); },
       [](const N& x) {
         Nd p = Softmax(x[0]);
         Nd y = Nd::Zeros({6});
         for (int64_t i = 0; i < 6; ++i) {
           for (int64_t k = 0; k < 10; ++k) {
             const double target = (k == static_cast<int64_t>(x[1].v[i]) ? 0.8 : 0) + 0.2 / 10;
             y.v[i] -= target * std::log(p[{i, k}]);
           }
         }
         return y;
       },
       "",
       [](Graph& g) {
         return SoftmaxCrossEntropy(g.Input("l", {6, 10}), g.Input("y", {6}, DType::kInt32), 1.0);
       },
       "expected label smoothing in [0, 1), got 1"});
  c.push_back({"accuracy_count",
               {OpKind::kArgMax, OpKind::kEqual, OpKind::kSum},
               {F({9, 10}), I({9}, 0, 10)},
               [](const V& x) { return AccuracyCount(x[0], x[1]); },
               [](const N& x) {
                 Nd a = ArgMaxRows(x[0]);
                 Nd y = Nd::Zeros({});
                 for (int64_t i = 0; i < 9; ++i) y.v[0] += a.v[i] == x[1].v[i] ? 1 : 0;
                 return y;
               },
               "integer output"});
  return c;
}

}  // namespace

std::vector<OpCase> MakeConvCases();   // op_cases_conv.cc
std::vector<OpCase> MakeMiscCases();   // op_cases_misc.cc
std::vector<OpCase> MakeBlockCases();  // op_cases_blocks.cc

const std::vector<OpCase>& AllOpCases() {
  static const std::vector<OpCase> cases = [] {
    std::vector<OpCase> all = MakeCases();
    std::vector<OpCase> conv = MakeConvCases();
    all.insert(all.end(), conv.begin(), conv.end());
    std::vector<OpCase> misc = MakeMiscCases();
    all.insert(all.end(), misc.begin(), misc.end());
    std::vector<OpCase> blocks = MakeBlockCases();
    all.insert(all.end(), blocks.begin(), blocks.end());
    return all;
  }();
  return cases;
}

}  // namespace kiln::testing
