// Op cases for slicing, padding, concatenation, clipping, dropout and batch normalization.
#include <cmath>

#include "tests/ops/op_check.h"

namespace kiln::testing {
namespace {

using V = std::vector<Value>;
using N = std::vector<Nd>;

// The dropout hash, written out independently of the lowering (murmur3-style finalizer).
bool DropoutKeeps(uint32_t index, uint32_t step, uint32_t seed, double p) {
  uint32_t h = index * 0x9E3779B1u + step * 0x85EBCA77u + seed * 0xC2B2AE3Du;
  h ^= h >> 16;
  h *= 0x7FEB352Du;
  h ^= h >> 15;
  h *= 0x846CA68Bu;
  h ^= h >> 16;
  return (h >> 8) / 16777216.0 >= p;
}

}  // namespace

std::vector<OpCase> MakeMiscCases() {
  std::vector<OpCase> c;
  c.push_back({"slice_middle_axis",
               {OpKind::kSlice},
               {F({3, 7, 2})},
               [](const V& x) { return Slice(x[0], 1, 2, 4); },
               [](const N& x) {
                 Nd y = Nd::Zeros({3, 4, 2});
                 ForEachIndex(y.shape, [&](const std::vector<int64_t>& i) {
                   y[i] = x[0][{i[0], i[1] + 2, i[2]}];
                 });
                 return y;
               },
               "",
               [](Graph& g) {
                 return Slice(g.Input("x", {3, 7}), 1, 5, 4);
               },
               "out of range"});
  c.push_back({"pad_two_axes",
               {OpKind::kPad},
               {F({2, 3, 4})},
               [](const V& x) {
                 return Pad(x[0], {0, 0, 1, 2, 3, 0}, 0.5);
               },
               [](const N& x) {
                 Nd y = Nd::Zeros({2, 6, 7});
                 ForEachIndex(y.shape, [&](const std::vector<int64_t>& i) {
                   int64_t a = i[1] - 1, b = i[2] - 3;
                   y[i] = (a >= 0 && a < 3 && b >= 0 && b < 4) ? x[0][{i[0], a, b}] : 0.5;
                 });
                 return y;
               },
               "",
               [](Graph& g) {
                 return Pad(g.Input("x", {3, 7}), {1, 1});
               },
               "expected 4 padding"});
  c.push_back({"concat_three_on_axis1",
               {OpKind::kConcat},
               {F({2, 3, 2}), F({2, 1, 2}), F({2, 4, 2})},
               [](const V& x) {
                 return Concat({x[0], x[1], x[2]}, 1);
               },
               [](const N& x) {
                 Nd y = Nd::Zeros({2, 8, 2});
                 ForEachIndex(y.shape, [&](const std::vector<int64_t>& i) {
                   int64_t k = i[1];
                   y[i] = k < 3   ? x[0][{i[0], k, i[2]}]
                          : k < 4 ? x[1][{i[0], k - 3, i[2]}]
                                  : x[2][{i[0], k - 4, i[2]}];
                 });
                 return y;
               },
               "",
               [](Graph& g) {
                 return Concat({g.Input("a", {2, 3}), g.Input("b", {3, 3})}, 1);
               },
               "expected inputs equal except along axis 1"});
  c.push_back(
      {"clip",
       {OpKind::kClip},
       {F({4, 5}, -2, 2)},
       [](const V& x) { return Clip(x[0], -0.5, 1.0); },
       [](const N& x) { return Map(x[0], [](double a) { return std::clamp(a, -0.5, 1.0); }); },
       "",
       [](Graph& g) { return Clip(g.Input("x", {3}), 1.0, -1.0); },
       "lo < hi"});
  // In op tests the step is 0 (no step input); the trainer feeds the real step.
  c.push_back({"dropout_train_mode",
               {OpKind::kDropout},
               {F({4, 50})},
               [](const V& x) { return Dropout(x[0], 0.3, 11); },
               [](const N& x) {
                 Nd y = x[0];
                 for (size_t i = 0; i < y.v.size(); ++i) {
                   y.v[i] = DropoutKeeps(static_cast<uint32_t>(i), 0, 11, 0.3) ? y.v[i] / 0.7 : 0.0;
                 }
                 return y;
               },
               "",
               [](Graph& g) { return Dropout(g.Input("x", {3}), 1.5); },
               "rate in [0, 1)"});
  c.push_back({"batch_norm_train_mode",
               {OpKind::kSum, OpKind::kSqrt, OpKind::kBuffer},
               {F({4, 3, 2, 5})},
               [](const V& x) { return BatchNorm(*x[0].graph(), "bn", 3)(x[0] * 3.0 + 1.0); },
               [](const N& x) {
                 Nd y = Map(x[0], [](double a) { return a * 3 + 1; });
                 for (int64_t ch = 0; ch < 3; ++ch) {
                   double sum = 0, sq = 0, n = 0;
                   ForEachIndex(y.shape, [&](const std::vector<int64_t>& i) {
                     if (i[1] == ch) sum += y[i], n += 1;
                   });
                   double mean = sum / n;
                   ForEachIndex(y.shape, [&](const std::vector<int64_t>& i) {
                     if (i[1] == ch) sq += (y[i] - mean) * (y[i] - mean);
                   });
                   double inv = 1 / std::sqrt(sq / n + 1e-5);
                   ForEachIndex(y.shape, [&](const std::vector<int64_t>& i) {
                     if (i[1] == ch) y[i] = (y[i] - mean) * inv;
                   });
                 }
                 return y;
               },
               "",
               [](Graph& g) {
                 return BatchNorm(g, "bn", 4)(g.Input("x", {2, 3, 5}));
               },
               "expected input [N, 4, ...]"});
  // Layer norm over the last axis, without and with its affine parameters (their gradients go
  // through mul and add, whose VJPs have cases of their own; checked here: the input's).
  for (bool affine : {false, true}) {
    c.push_back({affine ? "layer_norm_affine" : "layer_norm",
                 {OpKind::kSum, OpKind::kSqrt, OpKind::kDiv},
                 {F({2, 3, 6}, -2, 3)},
                 [affine](const V& x) {
                   LayerNorm::Options o;
                   o.affine = affine;
                   return LayerNorm(*x[0].graph(), "ln", 6, o)(x[0] * 2.0 + 0.5);
                 },
                 [](const N& x) {
                   Nd y = Map(x[0], [](double a) { return a * 2 + 0.5; });
                   for (int64_t r = 0; r < 6; ++r) {  // rows of the last axis (6 values each)
                     double mean = 0, var = 0;
                     for (int64_t k = 0; k < 6; ++k) mean += y.v[r * 6 + k] / 6;
                     for (int64_t k = 0; k < 6; ++k) {
                       var += (y.v[r * 6 + k] - mean) * (y.v[r * 6 + k] - mean) / 6;
                     }
                     for (int64_t k = 0; k < 6; ++k) {
                       y.v[r * 6 + k] = (y.v[r * 6 + k] - mean) / std::sqrt(var + 1e-5);
                     }
                   }
                   return y;  // the affine parameters start as ones and zeros
                 },
                 "",
                 [](Graph& g) {
                   return LayerNorm(g, "ln", 4)(g.Input("x", {2, 5}));
                 },
                 "expected input [..., 4]"});
  }
  return c;
}

}  // namespace kiln::testing
