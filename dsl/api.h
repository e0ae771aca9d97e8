// The user-facing DSL: ops, composites and layers over kiln::Value.
//
//   kiln::Graph g;
//   kiln::Value x = g.Input("image", {64, 784});
//   kiln::Value y = g.Input("label", {64}, kiln::DType::kInt32);
//   kiln::Linear fc(g, "fc", 784, 10);
//   kiln::Value loss = kiln::Mean(kiln::SoftmaxCrossEntropy(fc(x), y));
//
// Every function records a shape error on the graph (op, node name, shapes, what was expected) and
// returns an invalid Value instead of throwing; see dsl/graph.h. Axes may be negative (from the
// end).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "dsl/graph.h"

namespace kiln {

// Elementwise arithmetic with NumPy broadcasting.
Value Add(Value a, Value b);
Value Sub(Value a, Value b);
Value Mul(Value a, Value b);
Value Div(Value a, Value b);
Value operator+(Value a, Value b);
Value operator-(Value a, Value b);
Value operator*(Value a, Value b);
Value operator/(Value a, Value b);
// Scalar arithmetic (the scalar becomes a rank-0 constant node).
Value operator+(Value a, double s);
Value operator-(Value a, double s);
Value operator*(Value a, double s);
Value operator/(Value a, double s);
Value operator+(double s, Value a);
Value operator-(double s, Value a);
Value operator*(double s, Value a);
Value operator/(double s, Value a);
Value operator-(Value a);

// Elementwise functions.
Value Relu(Value x);
Value Sigmoid(Value x);
Value Tanh(Value x);
Value Erf(Value x);
// Activations composed of the primitives (docs/OPS.md):
Value LeakyRelu(Value x, double alpha = 0.01);  // x > 0 ? x : alpha x
Value Elu(Value x, double alpha = 1.0);         // x > 0 ? x : alpha (exp(x) - 1)
Value Silu(Value x);                            // x sigmoid(x)
// GELU: x Phi(x) with the normal CDF exact (erf) or by PyTorch's tanh approximation
// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
enum class GeluApproximation { kNone, kTanh };
Value Gelu(Value x, GeluApproximation approximation = GeluApproximation::kNone);
Value Exp(Value x);
Value Log(Value x);
Value Square(Value x);
Value Sqrt(Value x);
Value Step(Value x);                                // 1 where x > 0 else 0; not differentiable
Value Equal(Value a, Value b);                      // 1 where a == b else 0, in the inputs' dtype
Value RoundToInt(Value x, int64_t lo, int64_t hi);  // int32 clamp(round(x), lo, hi)
Value OneHot(Value labels, int64_t depth);          // int32 [..] -> float [.., depth]
Value ToFloat(Value x);                             // int32 or uint8 -> float
// Raw uint8 pixels -> float in [0, 1] inside the step (pixel * float(1/255), bit for bit what the
// host-side feeder computes): the runtime then feeds bytes, not four times as many floats.
Value UnitPixels(Value pixels);

// Shapes.
Value Reshape(Value x, Shape shape);
Value Flatten(Value x, int start_axis = 1);                // [N, a, b, ...] -> [N, a*b*...]
Value Transpose(Value x, std::vector<int64_t> perm = {});  // default: reverse the axes
Value TransposeLast2(Value x);  // swaps the last two axes (rank >= 2); MatMul reads it in place
Value BroadcastTo(Value x, Shape shape);
Value Slice(Value x, int64_t axis, int64_t start, int64_t size);
// pads = {before_0, after_0, before_1, after_1, ...}, one pair per axis.
Value Pad(Value x, std::vector<int64_t> pads, double value = 0);
Value Concat(const std::vector<Value>& values, int64_t axis);

// Regularization.
Value Clip(Value x, double lo, double hi);
// In a training graph: zero each element with probability p and scale the rest by 1 / (1 - p),
// the mask a hash of (seed, step, element). In an evaluation graph: x itself.
Value Dropout(Value x, double p, int64_t seed = 0);

// Reductions. Empty `axes` means all axes.
Value Sum(Value x, std::vector<int64_t> axes = {}, bool keepdims = false);
Value Mean(Value x, std::vector<int64_t> axes = {}, bool keepdims = false);
Value Max(Value x, int64_t axis, bool keepdims = false);
Value ArgMax(Value x, int64_t axis);  // int32

// Linear algebra: [M, K] x [K, N] -> [M, N]; batched, [..., M, K] x [..., K, N] -> [..., M, N]
// over equal leading axes; and [..., M, K] x [K, N] -> [..., M, N] (a weight applied to every
// row). Either operand may be a Transpose of the last two axes (Q K^T): it is read in place.
Value MatMul(Value a, Value b);

// Convolution and pooling, NCHW. x: [N, C, H, W], w: [O, C, KH, KW].
// The convolution's attributes (dsl/attrs.h): stride, padding and dilation per spatial axis.
using ConvParams = Conv2dAttrs;
Value Conv2d(Value x, Value w, const ConvParams& p = {});
// Square windows; stride 0 means stride = kernel.
Value MaxPool2d(Value x, int64_t kernel, int64_t stride = 0, int64_t padding = 0);
Value AvgPool2d(Value x, int64_t kernel, int64_t stride = 0, int64_t padding = 0);

// Global average pooling: [N, C, H, W] -> [N, C], the mean over the spatial axes.
Value GlobalAvgPool2d(Value x);

// Scaled dot-product attention over the last two axes: softmax(q k^T / sqrt(d)) v for
// q [..., Tq, d], k [..., Tk, d], v [..., Tk, dv] -> [..., Tq, dv]. Batched matmuls read k
// transposed in place; the softmax runs over keys (the last axis).
Value ScaledDotProductAttention(Value q, Value k, Value v);

// Composites for classification and regression.
Value Softmax(Value x, int64_t axis = -1);
Value LogSoftmax(Value x, int64_t axis = -1);
// (pred - label)^2 elementwise, as paddle.nn.functional.square_error_cost.
Value SquareErrorCost(Value pred, Value label);
// Per-example cross-entropy of logits [B, C] against int32 labels [B]: returns [B].
Value SoftmaxCrossEntropy(Value logits, Value labels);
// With label smoothing in [0, 1): the target puts 1 - smoothing + smoothing / classes on the
// label and smoothing / classes on every other class (PyTorch's label_smoothing).
Value SoftmaxCrossEntropy(Value logits, Value labels, double smoothing);
// Number of rows whose argmax equals the label: int32 scalar.
Value AccuracyCount(Value logits, Value labels);

// A fully connected layer y = x W + b, W: [in, out], b: [out].
class Linear {
 public:
  struct Options {
    bool bias = true;
    Initializer weight_init = Initializer::XavierUniform();
    Initializer bias_init = Initializer::Zeros();
  };
  Linear(Graph& g, const std::string& name, int64_t in_features, int64_t out_features,
         Options options);
  Linear(Graph& g, const std::string& name, int64_t in_features, int64_t out_features)
      : Linear(g, name, in_features, out_features, Options()) {}
  Value operator()(Value x) const;
  Value weight() const { return weight_; }
  Value bias() const { return bias_; }

 private:
  std::string name_;
  Value weight_, bias_;
  mutable bool applied_ = false;
};

// Batch normalization over all axes but axis 1 (channels for [N, C, H, W], features for
// [N, F]): in training, normalize with the batch's statistics and update the running mean and
// variance (buffers, momentum as PyTorch: r <- (1 - m) r + m x, unbiased variance); in evaluation,
// normalize with the running statistics. Learnable scale (ones) and shift (zeros).
class BatchNorm {
 public:
  struct Options {
    double momentum = 0.1;
    double eps = 1e-5;
  };
  BatchNorm(Graph& g, const std::string& name, int64_t channels, Options options);
  BatchNorm(Graph& g, const std::string& name, int64_t channels)
      : BatchNorm(g, name, channels, Options()) {}
  Value operator()(Value x) const;

 private:
  std::string name_;
  Value gamma_, beta_, running_mean_, running_var_;
  Options options_;
  mutable bool applied_ = false;
};

// Layer normalization over the last axis (PyTorch's LayerNorm(features)): y = (x - mean) /
// sqrt(var + eps), the biased variance over the last axis, then, when `affine`, times a learned
// scale ("<name>.weight", ones) plus a learned shift ("<name>.bias", zeros). The same in training
// and evaluation (no running statistics).
class LayerNorm {
 public:
  struct Options {
    double eps = 1e-5;
    bool affine = true;
  };
  LayerNorm(Graph& g, const std::string& name, int64_t features, Options options);
  LayerNorm(Graph& g, const std::string& name, int64_t features)
      : LayerNorm(g, name, features, Options()) {}
  Value operator()(Value x) const;

 private:
  std::string name_;
  int64_t features_;
  Value gamma_, beta_;
  Options options_;
  mutable bool applied_ = false;
};

// Multi-head self-attention over x [B, T, dim]: separate query, key and value projections
// ("<name>.q", "<name>.k", "<name>.v", each Linear(dim, dim)), `heads` heads of dim / heads
// features attending independently (ScaledDotProductAttention), then the output projection
// "<name>.out". The heads are views ([B, T, heads, d] as [B, heads, T, d]), never copies.
class MultiHeadAttention {
 public:
  MultiHeadAttention(Graph& g, const std::string& name, int64_t dim, int64_t heads,
                     Linear::Options options);
  MultiHeadAttention(Graph& g, const std::string& name, int64_t dim, int64_t heads)
      : MultiHeadAttention(g, name, dim, heads, Linear::Options()) {}
  Value operator()(Value x) const;

 private:
  std::string name_;
  int64_t dim_, heads_;
  Linear q_, k_, v_, out_;
  mutable bool applied_ = false;
};

// A 2-D convolution layer: w [out, in, k, k] (Kaiming-uniform by default), optional bias [out].
class Conv2D {
 public:
  struct Options {
    int64_t stride = 1, padding = 0, dilation = 1;
    bool bias = true;
    Initializer weight_init = Initializer::KaimingUniform();
    Initializer bias_init = Initializer::Zeros();
  };
  Conv2D(Graph& g, const std::string& name, int64_t in_channels, int64_t out_channels,
         int64_t kernel, Options options);
  Conv2D(Graph& g, const std::string& name, int64_t in_channels, int64_t out_channels,
         int64_t kernel)
      : Conv2D(g, name, in_channels, out_channels, kernel, Options()) {}
  Value operator()(Value x) const;
  Value weight() const { return weight_; }
  Value bias() const { return bias_; }

 private:
  std::string name_;
  Value weight_, bias_;
  Options options_;
  mutable bool applied_ = false;
};

// Sequential-style chaining of layers and functions:
//   kiln::Sequential net;
//   net.Add(kiln::Conv2D(g, "conv1", 1, 20, 5, same)).Add(kiln::Relu)
//      .Add([](kiln::Value v) { return kiln::MaxPool2d(v, 2); });
//   kiln::Value y = net(x);
class Sequential {
 public:
  template <typename Layer>
  Sequential& Add(Layer layer) {
    steps_.emplace_back([layer](Value v) { return layer(v); });
    return *this;
  }
  Sequential& Add(Value (*fn)(Value)) {
    steps_.emplace_back(fn);
    return *this;
  }
  Value operator()(Value x) const {
    for (const auto& step : steps_) x = step(x);
    return x;
  }
  size_t size() const { return steps_.size(); }

 private:
  std::vector<std::function<Value(Value)>> steps_;
};

}  // namespace kiln
