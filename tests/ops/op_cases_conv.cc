// Op cases for convolution and pooling: stride, padding, dilation, odd and non-square sizes, and
// the backward primitives on their own against scatter-style naive loops (the opposite
// formulation of the gather-style lowering).
#include <cmath>

#include "tests/ops/op_check.h"

namespace kiln::testing {
namespace {

using V = std::vector<Value>;
using N = std::vector<Nd>;

struct Conv {
  int64_t sh, sw, ph, pw, dh, dw;
  ConvParams params() const { return {sh, sw, ph, pw, dh, dw}; }
  int64_t Out(int64_t in, int64_t k, bool h) const {
    return h ? (in + 2 * ph - dh * (k - 1) - 1) / sh + 1
             : (in + 2 * pw - dw * (k - 1) - 1) / sw + 1;
  }
};

// Visits every (output position, tap) pair of a convolution with the input coordinate it reads.
template <typename Fn>
void ForEachTap(const Shape& x, const Shape& w, const Conv& c, Fn fn) {
  int64_t oh = c.Out(x[2], w[2], true), ow = c.Out(x[3], w[3], false);
  for (int64_t n = 0; n < x[0]; ++n)
    for (int64_t o = 0; o < w[0]; ++o)
      for (int64_t y = 0; y < oh; ++y)
        for (int64_t xx = 0; xx < ow; ++xx)
          for (int64_t ci = 0; ci < w[1]; ++ci)
            for (int64_t ky = 0; ky < w[2]; ++ky)
              for (int64_t kx = 0; kx < w[3]; ++kx) {
                int64_t iy = y * c.sh - c.ph + ky * c.dh, ix = xx * c.sw - c.pw + kx * c.dw;
                if (iy < 0 || iy >= x[2] || ix < 0 || ix >= x[3]) continue;
                fn(std::vector<int64_t>{n, o, y, xx}, std::vector<int64_t>{n, ci, iy, ix},
                   std::vector<int64_t>{o, ci, ky, kx});
              }
}

Nd ConvRef(const Nd& x, const Nd& w, const Conv& c) {
  Nd y = Nd::Zeros({x.shape[0], w.shape[0], c.Out(x.shape[2], w.shape[2], true),
                    c.Out(x.shape[3], w.shape[3], false)});
  ForEachTap(x.shape, w.shape, c, [&](auto yi, auto xi, auto wi) { y[yi] += x[xi] * w[wi]; });
  return y;
}

// dx scattered from each output position (the opposite of the lowering's gather).
Nd ConvBackwardInputRef(const Nd& dy, const Nd& w, const Conv& c, int64_t h, int64_t wd) {
  Shape xs = {dy.shape[0], w.shape[1], h, wd};
  Nd dx = Nd::Zeros(xs);
  ForEachTap(xs, w.shape, c, [&](auto yi, auto xi, auto wi) { dx[xi] += dy[yi] * w[wi]; });
  return dx;
}

Nd ConvBackwardWeightRef(const Nd& x, const Nd& dy, const Conv& c, int64_t kh, int64_t kw) {
  Shape ws = {dy.shape[1], x.shape[1], kh, kw};
  Nd dw = Nd::Zeros(ws);
  ForEachTap(x.shape, ws, c, [&](auto yi, auto xi, auto wi) { dw[wi] += dy[yi] * x[xi]; });
  return dw;
}

struct Pool {
  int64_t k, s, p;
  int64_t Out(int64_t in) const { return (in + 2 * p - k) / s + 1; }
};

// Window argmax (first maximum in row-major tap order; padding never wins).
Nd ArgmaxRef(const Nd& x, const Pool& q) {
  Nd idx = Nd::Zeros({x.shape[0], x.shape[1], q.Out(x.shape[2]), q.Out(x.shape[3])});
  ForEachIndex(idx.shape, [&](const std::vector<int64_t>& o) {
    double best = -INFINITY;
    int64_t arg = 0;
    for (int64_t ky = 0; ky < q.k; ++ky)
      for (int64_t kx = 0; kx < q.k; ++kx) {
        int64_t iy = o[2] * q.s - q.p + ky, ix = o[3] * q.s - q.p + kx;
        if (iy < 0 || iy >= x.shape[2] || ix < 0 || ix >= x.shape[3]) continue;
        double v = x[{o[0], o[1], iy, ix}];
        if (v > best) {
          best = v;
          arg = ky * q.k + kx;
        }
      }
    idx[o] = static_cast<double>(arg);
  });
  return idx;
}

Nd MaxPoolRef(const Nd& x, const Pool& q) {
  Nd idx = ArgmaxRef(x, q);
  Nd y = idx;
  ForEachIndex(idx.shape, [&](const std::vector<int64_t>& o) {
    int64_t t = static_cast<int64_t>(idx[o]);
    y[o] = x[{o[0], o[1], o[2] * q.s - q.p + t / q.k, o[3] * q.s - q.p + t % q.k}];
  });
  return y;
}

Nd ScatterRef(const Nd& dy, const Nd& idx, const Pool& q, int64_t h, int64_t w) {
  Nd dx = Nd::Zeros({dy.shape[0], dy.shape[1], h, w});
  ForEachIndex(dy.shape, [&](const std::vector<int64_t>& o) {
    int64_t t = static_cast<int64_t>(idx[o]);
    int64_t iy = o[2] * q.s - q.p + t / q.k, ix = o[3] * q.s - q.p + t % q.k;
    if (iy >= 0 && iy < h && ix >= 0 && ix < w) dx[{o[0], o[1], iy, ix}] += dy[o];
  });
  return dx;
}

Nd AvgPoolRef(const Nd& x, const Pool& q) {
  Nd y = Nd::Zeros({x.shape[0], x.shape[1], q.Out(x.shape[2]), q.Out(x.shape[3])});
  ForEachIndex(y.shape, [&](const std::vector<int64_t>& o) {
    for (int64_t ky = 0; ky < q.k; ++ky)
      for (int64_t kx = 0; kx < q.k; ++kx) {
        int64_t iy = o[2] * q.s - q.p + ky, ix = o[3] * q.s - q.p + kx;
        if (iy >= 0 && iy < x.shape[2] && ix >= 0 && ix < x.shape[3]) {
          y[o] += x[{o[0], o[1], iy, ix}] / double(q.k * q.k);
        }
      }
  });
  return y;
}

Nd AvgBackwardRef(const Nd& dy, const Pool& q, int64_t h, int64_t w) {
  Nd dx = Nd::Zeros({dy.shape[0], dy.shape[1], h, w});
  ForEachIndex(dy.shape, [&](const std::vector<int64_t>& o) {
    for (int64_t ky = 0; ky < q.k; ++ky)
      for (int64_t kx = 0; kx < q.k; ++kx) {
        int64_t iy = o[2] * q.s - q.p + ky, ix = o[3] * q.s - q.p + kx;
        if (iy >= 0 && iy < h && ix >= 0 && ix < w)
          dx[{o[0], o[1], iy, ix}] += dy[o] / double(q.k * q.k);
      }
  });
  return dx;
}

OpCase ConvCase(std::string name, Shape x, Shape w, Conv c) {
  return {name,
          {OpKind::kConv2D},
          {F(x), F(w)},
          [c](const V& v) { return Conv2d(v[0], v[1], c.params()); },
          [c](const N& v) { return ConvRef(v[0], v[1], c); }};
}

Value AddRaw(Value first, std::vector<Value> rest, OpKind op, Attrs a) {
  rest.insert(rest.begin(), first);
  return first.graph()->AddNode(op, rest, a);
}

}  // namespace

std::vector<OpCase> MakeConvCases() {
  std::vector<OpCase> c;
  OpCase basic = ConvCase("conv2d_pad1", {2, 3, 7, 6}, {4, 3, 3, 3}, {1, 1, 1, 1, 1, 1});
  basic.bad = [](Graph& g) {
    return Conv2d(g.Input("x", {2, 3, 7, 6}), g.Input("w", {4, 2, 3, 3}));
  };
  basic.error = "input has 3 channels";
  c.push_back(basic);
  c.push_back(
      ConvCase("conv2d_stride2_nonsquare_kernel", {2, 2, 9, 8}, {3, 2, 3, 2}, {2, 2, 2, 1, 1, 1}));
  // A residual block's strided 1x1 shortcut: the input gradient's phase form reads zero weights
  // for three of every four input pixels.
  c.push_back(ConvCase("conv2d_1x1_stride2", {2, 3, 6, 8}, {4, 3, 1, 1}, {2, 2, 0, 0, 1, 1}));
  c.push_back(ConvCase("conv2d_dilation2", {1, 2, 10, 9}, {2, 2, 3, 3}, {1, 1, 0, 0, 2, 2}));
  c.push_back(
      ConvCase("conv2d_stride3_dilation2_pad3", {1, 1, 11, 13}, {2, 1, 2, 3}, {3, 2, 3, 1, 2, 2}));
  c.push_back(
      ConvCase("conv2d_tutorial_tiles", {2, 20, 14, 14}, {20, 20, 5, 5}, {1, 1, 2, 2, 1, 1}));
  c.push_back(ConvCase("conv2d_no_padding_odd", {3, 1, 9, 7}, {5, 1, 5, 3}, {1, 1, 0, 0, 1, 1}));
  const Conv bc{2, 2, 1, 1, 1, 1};
  OpCase bi{"conv2d_backward_input",
            {OpKind::kConv2DBackwardInput},
            {F({2, 4, 4, 3}), F({4, 3, 3, 3})},
            [bc](const V& v) {
              return AddRaw(v[0], {v[1]}, OpKind::kConv2DBackwardInput,
                            Attrs{Conv2dBackwardInputAttrs{bc.params(), 7, 6}});
            },
            [bc](const N& v) { return ConvBackwardInputRef(v[0], v[1], bc, 7, 6); },
            "a backward primitive (checked through conv2d's gradient)",
            [](Graph& g) {
              Attrs a{Conv2dBackwardInputAttrs{Conv2dAttrs::Same(2, 1), 9, 6}};
              return g.AddNode(OpKind::kConv2DBackwardInput,
                               {g.Input("dy", {2, 4, 4, 3}), g.Input("w", {4, 3, 3, 3})}, a);
            },
            "does not match"};
  // Stride 2 over 6-wide rows: the accumulator tile is read as stride-2 vectors at odd constant
  // offsets, which Halide 14 emits as an aligned load of a misaligned address. Without the
  // instrumentation the tile lives in registers and the load never happens.
  bi.without_halide_asan =
      "Halide 14 marks a dense load 24 bytes into an accumulator tile as 32/64-byte aligned "
      "(odd constant offset of a stride-2 load); with its asan feature the tile stays in memory "
      "and the load faults (tests/halide/strided_load_alignment.cc, docs/RELIABILITY.md)";
  c.push_back(bi);
  c.push_back({"conv2d_backward_weight",
               {OpKind::kConv2DBackwardWeight},
               {F({2, 3, 7, 6}), F({2, 4, 4, 3})},
               [bc](const V& v) {
                 return AddRaw(v[0], {v[1]}, OpKind::kConv2DBackwardWeight,
                               Attrs{Conv2dBackwardWeightAttrs{bc.params(), 3, 3}});
               },
               [bc](const N& v) { return ConvBackwardWeightRef(v[0], v[1], bc, 3, 3); },
               "a backward primitive (checked through conv2d's gradient)"});
  // ---- pooling ----
  auto max_case = [](std::string name, Shape x, Pool q) {
    OpCase oc{name,
              {OpKind::kMaxPool2DArgmax, OpKind::kMaxPool2DGather},
              {F(x)},
              [q](const V& v) { return MaxPool2d(v[0], q.k, q.s, q.p); },
              [q](const N& v) { return MaxPoolRef(v[0], q); }};
    return oc;
  };
  OpCase mp = max_case("max_pool2d_2x2", {2, 3, 6, 8}, {2, 2, 0});
  mp.bad = [](Graph& g) { return MaxPool2d(g.Input("x", {2, 3, 6}), 2); };
  mp.error = "expected [N, C, H, W]";
  c.push_back(mp);
  c.push_back(max_case("max_pool2d_k3_s2_p1_overlapping", {1, 2, 7, 7}, {3, 2, 1}));
  c.push_back(max_case("max_pool2d_odd_size_floor", {2, 1, 7, 5}, {2, 2, 0}));
  const Pool q3{3, 2, 1};
  // The gather with the ReLU fused (compiler/passes.h FuseReluIntoMaxPool): relu(max_pool2d(x)),
  // the argmax over x; overlapping windows, so the scatter sums gradients the ReLU masked.
  OpCase fused{
      "max_pool2d_gather_relu",
      {OpKind::kMaxPool2DArgmax, OpKind::kMaxPool2DGather},
      {F({2, 3, 7, 8})},
      [](const V& v) {
        Value idx = AddRaw(v[0], {}, OpKind::kMaxPool2DArgmax, Attrs{Pool2dAttrs{3, 2, 1}});
        return AddRaw(v[0], {idx}, OpKind::kMaxPool2DGather,
                      Attrs{Pool2dAttrs{3, 2, 1, /*relu=*/true}});
      },
      [q3](const N& v) {
        return Map(MaxPoolRef(v[0], q3), [](double a) { return a > 0 ? a : 0; });
      }};
  fused.bad = [](Graph& g) {
    return g.AddNode(OpKind::kMaxPool2DArgmax, {g.Input("x", {1, 1, 4, 4})},
                     Attrs{Pool2dAttrs{2, 2, 0, /*relu=*/true}});
  };
  fused.error = "relu is an attribute of max_pool2d_gather only";
  c.push_back(fused);
  // Without padding the gather reads the window maximum its argmax computed (LowerGather), then
  // the fused ReLU.
  const Pool q2{2, 2, 0};
  c.push_back(
      {"max_pool2d_gather_relu_unpadded",
       {OpKind::kMaxPool2DArgmax, OpKind::kMaxPool2DGather},
       {F({2, 3, 6, 8})},
       [](const V& v) {
         Value idx = AddRaw(v[0], {}, OpKind::kMaxPool2DArgmax, Attrs{Pool2dAttrs{2, 2, 0}});
         return AddRaw(v[0], {idx}, OpKind::kMaxPool2DGather,
                       Attrs{Pool2dAttrs{2, 2, 0, /*relu=*/true}});
       },
       [q2](const N& v) {
         return Map(MaxPoolRef(v[0], q2), [](double a) { return a > 0 ? a : 0; });
       }});
  c.push_back({"max_pool2d_argmax",
               {OpKind::kMaxPool2DArgmax},
               {F({2, 2, 7, 6})},
               [q3](const V& v) {
                 return AddRaw(v[0], {}, OpKind::kMaxPool2DArgmax, Attrs{Pool2dAttrs{3, 2, 1}});
               },
               [q3](const N& v) { return ArgmaxRef(v[0], q3); },
               "integer output",
               [](Graph& g) {
                 return MaxPool2d(g.Input("x", {1, 1, 4, 4}), 4, 1, 3);
               },
               "padding <= kernel/2"});
  c.push_back({"max_pool2d_scatter",
               {OpKind::kMaxPool2DScatter},
               {F({1, 2, 4, 4}), I({1, 2, 4, 4}, 0, 9)},
               [](const V& v) {
                 return AddRaw(v[0], {v[1]}, OpKind::kMaxPool2DScatter,
                               Attrs{Pool2dBackwardAttrs{{3, 2, 1}, 7, 7}});
               },
               [q3](const N& v) { return ScatterRef(v[0], v[1], q3, 7, 7); },
               "a backward primitive (checked through max_pool2d's gradient)"});
  const Pool a2{2, 2, 0}, a3{3, 1, 1};
  OpCase avg{"avg_pool2d_2x2",
             {OpKind::kAvgPool2D},
             {F({2, 3, 6, 8})},
             [a2](const V& v) { return AvgPool2d(v[0], a2.k, a2.s, a2.p); },
             [a2](const N& v) { return AvgPoolRef(v[0], a2); }};
  avg.bad = [](Graph& g) { return AvgPool2d(g.Input("x", {1, 1, 3, 3}), 5); };
  avg.error = "larger than the padded input";
  c.push_back(avg);
  c.push_back({"avg_pool2d_k3_s1_p1",
               {OpKind::kAvgPool2D},
               {F({1, 2, 5, 6})},
               [a3](const V& v) { return AvgPool2d(v[0], a3.k, a3.s, a3.p); },
               [a3](const N& v) { return AvgPoolRef(v[0], a3); }});
  c.push_back({"avg_pool2d_backward",
               {OpKind::kAvgPool2DBackward},
               {F({1, 2, 5, 6})},
               [](const V& v) {
                 return AddRaw(v[0], {}, OpKind::kAvgPool2DBackward,
                               Attrs{Pool2dBackwardAttrs{{3, 1, 1}, 5, 6}});
               },
               [a3](const N& v) { return AvgBackwardRef(v[0], a3, 5, 6); },
               "a backward primitive (checked through avg_pool2d's gradient)"});
  // A small CNN block end to end: conv + bias + relu + pool + flatten + matmul.
  c.push_back(
      {"cnn_block",
       {OpKind::kConv2D, OpKind::kMaxPool2DGather, OpKind::kReshape},
       {F({2, 1, 8, 8}), F({3, 1, 3, 3}), F({3}), F({48, 4})},
       [](const V& v) {
         Value h = Relu(Conv2d(v[0], v[1], ConvParams::Same(1, 1)) + Reshape(v[2], {3, 1, 1}));
         return MatMul(Flatten(MaxPool2d(h, 2)), v[3]);
       },
       [](const N& v) {
         Nd h = Zip(ConvRef(v[0], v[1], {1, 1, 1, 1, 1, 1}), Nd{{3, 1, 1}, v[2].v},
                    [](double a, double b) { return std::max(a + b, 0.0); });
         Nd p = MaxPoolRef(h, {2, 2, 0});
         p.shape = {2, 48};
         return MatMulRef(p, v[3]);
       }});
  // Two convolutions with bias, ReLU and max pooling over a batch of 32: planned batch-inner by
  // default (16 float lanes on AVX-512, 8 on AVX2 and for float64), with more than one vector of
  // images per tile and the bias gradient summed over image lanes. Its gradient runs both backward
  // convolutions; the first one's weight gradient reads a planned dy (the ReLU's mask), which no
  // case of a lone backward primitive can (its dy is an argument, and arguments are row-major).
  c.push_back(
      {"cnn_block_batch32",
       {OpKind::kConv2D, OpKind::kMaxPool2DGather, OpKind::kConv2DBackwardInput,
        OpKind::kConv2DBackwardWeight},
       {F({32, 2, 6, 6}), F({4, 2, 3, 3}), F({4}), F({3, 4, 3, 3}), F({27, 2})},
       [](const V& v) {
         Value h = Relu(Conv2d(v[0], v[1], ConvParams::Same(1, 1)) + Reshape(v[2], {4, 1, 1}));
         Value p = MaxPool2d(h, 2);
         return MatMul(Flatten(Conv2d(p, v[3], ConvParams::Same(1, 1))), v[4]);
       },
       [](const N& v) {
         Nd h = Zip(ConvRef(v[0], v[1], {1, 1, 1, 1, 1, 1}), Nd{{4, 1, 1}, v[2].v},
                    [](double a, double b) { return std::max(a + b, 0.0); });
         Nd q = ConvRef(MaxPoolRef(h, {2, 2, 0}), v[3], {1, 1, 1, 1, 1, 1});
         q.shape = {32, 27};
         return MatMulRef(q, v[4]);
       }});
  return c;
}

}  // namespace kiln::testing
