#include "dsl/api.h"

#include <optional>

#include "absl/strings/str_cat.h"

namespace kiln {
namespace {

// Adds a summary row for `y` (the parameter count only on a layer's first application).
Value Record(Value y, const std::string& name, const char* type, int64_t params, bool* applied) {
  if (!y.valid()) return y;
  y.graph()->RecordLayer({name.empty() ? y.name() : name, type, y.shape(), *applied ? 0 : params});
  *applied = true;
  return y;
}

int64_t Count(Value a, Value b = Value()) {
  return (a.valid() ? NumElements(a.shape()) : 0) + (b.valid() ? NumElements(b.shape()) : 0);
}

Value Unary(OpKind op, Value x) {
  if (!x.valid()) return x;
  return x.graph()->AddNode(op, {x});
}

// AddNode reports an input that is empty or from another graph, and passes on a failed one.
Value Binary(OpKind op, Value a, Value b) {
  Graph* g = a.graph() != nullptr ? a.graph() : b.graph();
  if (g == nullptr) return a;
  return g->AddNode(op, {a, b});
}

// For a composite over `a` and `b`: the failed Value to pass on, or an error for an empty
// (default-constructed) one; nullopt when both are valid.
std::optional<Value> Unusable(const char* what, Value a, Value b) {
  for (const Value& v : {a, b}) {
    if (!v.valid() && v.graph() != nullptr) return v;
  }
  if (a.valid() && b.valid()) return std::nullopt;
  Graph* g = a.graph() != nullptr ? a.graph() : b.graph();
  if (g == nullptr) return Value();
  return g->Fail(what, absl::InvalidArgumentError(absl::StrCat(
                           what, ": an operand is a default-constructed Value (no node)")));
}

// Labels of a classification loss must be int32 class indices, one per example.
absl::Status CheckClassLabels(const char* loss, Value logits, Value labels) {
  if (labels.dtype() != DType::kInt32 || labels.rank() + 1 != logits.rank()) {
    return absl::InvalidArgumentError(absl::StrCat(
        loss, ": expected int32 labels ",
        ShapeString(Shape(logits.shape().begin(), logits.shape().end() - 1)),
        " (class indices, one per row of logits ", ShapeString(logits.shape()), "), got '",
        labels.name(), "' ", DTypeName(labels.dtype()), ShapeString(labels.shape())));
  }
  return absl::OkStatus();
}

Value Scalar(Value like, double s) {
  if (!like.valid()) return like;
  return like.graph()->Constant(s);
}

// Normalizes a possibly negative axis; out-of-range axes are left for the shape rule to reject.
int64_t NormAxis(int64_t axis, int rank) { return axis < 0 ? axis + rank : axis; }

}  // namespace

Value Add(Value a, Value b) { return Binary(OpKind::kAdd, a, b); }
Value Sub(Value a, Value b) { return Binary(OpKind::kSub, a, b); }
Value Mul(Value a, Value b) { return Binary(OpKind::kMul, a, b); }
Value Div(Value a, Value b) { return Binary(OpKind::kDiv, a, b); }
Value operator+(Value a, Value b) { return Add(a, b); }
Value operator-(Value a, Value b) { return Sub(a, b); }
Value operator*(Value a, Value b) { return Mul(a, b); }
Value operator/(Value a, Value b) { return Div(a, b); }
Value operator+(Value a, double s) { return Add(a, Scalar(a, s)); }
Value operator-(Value a, double s) { return Sub(a, Scalar(a, s)); }
Value operator*(Value a, double s) { return Mul(a, Scalar(a, s)); }
Value operator/(Value a, double s) { return Div(a, Scalar(a, s)); }
Value operator+(double s, Value a) { return Add(Scalar(a, s), a); }
Value operator-(double s, Value a) { return Sub(Scalar(a, s), a); }
Value operator*(double s, Value a) { return Mul(Scalar(a, s), a); }
Value operator/(double s, Value a) { return Div(Scalar(a, s), a); }
Value operator-(Value a) { return a * -1.0; }

Value Relu(Value x) { return Unary(OpKind::kRelu, x); }
Value Sigmoid(Value x) { return Unary(OpKind::kSigmoid, x); }
Value Tanh(Value x) { return Unary(OpKind::kTanh, x); }
Value Erf(Value x) { return Unary(OpKind::kErf, x); }

// relu(x) - alpha relu(-x): the gradient is step(x) + alpha step(-x), never through a step.
Value LeakyRelu(Value x, double alpha) {
  if (auto bad = Unusable("LeakyRelu", x, x)) return *bad;
  Graph::ErrorContext context(x.graph(), "LeakyRelu");
  return Relu(x) - alpha * Relu(-x);
}

// relu(x) + alpha (exp(-relu(-x)) - 1): exp(x) - 1 scaled below 0, x above.
Value Elu(Value x, double alpha) {
  if (auto bad = Unusable("Elu", x, x)) return *bad;
  Graph::ErrorContext context(x.graph(), "Elu");
  return Relu(x) + alpha * (Exp(-Relu(-x)) - 1.0);
}

Value Silu(Value x) {
  if (auto bad = Unusable("Silu", x, x)) return *bad;
  Graph::ErrorContext context(x.graph(), "Silu");
  return x * Sigmoid(x);
}

Value Gelu(Value x, GeluApproximation approximation) {
  if (auto bad = Unusable("Gelu", x, x)) return *bad;
  Graph::ErrorContext context(x.graph(), "Gelu");
  if (approximation == GeluApproximation::kTanh) {
    const double c = std::sqrt(2 / M_PI);
    return 0.5 * x * (1.0 + Tanh(c * (x + 0.044715 * x * Square(x))));
  }
  return 0.5 * x * (1.0 + Erf(x * (1 / std::sqrt(2.0))));
}
Value Exp(Value x) { return Unary(OpKind::kExp, x); }
Value Log(Value x) { return Unary(OpKind::kLog, x); }
Value Square(Value x) { return Unary(OpKind::kSquare, x); }
Value Sqrt(Value x) { return Unary(OpKind::kSqrt, x); }
Value Step(Value x) { return Unary(OpKind::kStep, x); }
Value ToFloat(Value x) { return Unary(OpKind::kToFloat, x); }
Value UnitPixels(Value pixels) {
  if (pixels.valid() && pixels.dtype() != DType::kUInt8) {
    return pixels.graph()->Fail("UnitPixels",
                                absl::InvalidArgumentError(absl::StrCat(
                                    "UnitPixels: expected uint8 pixels, got '", pixels.name(), "' ",
                                    DTypeName(pixels.dtype()), ShapeString(pixels.shape()))));
  }
  return ToFloat(pixels) * static_cast<double>(1.0f / 255.0f);
}
Value Equal(Value a, Value b) { return Binary(OpKind::kEqual, a, b); }

Value RoundToInt(Value x, int64_t lo, int64_t hi) {
  if (!x.valid()) return x;
  return x.graph()->AddNode(OpKind::kRoundToInt, {x}, Attrs{RoundToIntAttrs{lo, hi}});
}

Value OneHot(Value labels, int64_t depth) {
  if (!labels.valid()) return labels;
  return labels.graph()->AddNode(OpKind::kOneHot, {labels}, Attrs{OneHotAttrs{depth}});
}

Value Reshape(Value x, Shape shape) {
  if (!x.valid()) return x;
  return x.graph()->AddNode(OpKind::kReshape, {x}, Attrs{ShapeAttrs{std::move(shape)}});
}

Value Flatten(Value x, int start_axis) {
  if (!x.valid()) return x;
  Shape s;
  int64_t inner = 1;
  for (int i = 0; i < x.rank(); ++i) {
    if (i < start_axis) {
      s.push_back(x.shape()[i]);
    } else {
      inner *= x.shape()[i];
    }
  }
  s.push_back(inner);
  bool once = false;
  return Record(Reshape(x, s), "", "Flatten", 0, &once);
}

Value Transpose(Value x, std::vector<int64_t> perm) {
  if (!x.valid()) return x;
  if (perm.empty()) {
    for (int i = x.rank() - 1; i >= 0; --i) perm.push_back(i);
  }
  for (int64_t& p : perm) p = NormAxis(p, x.rank());
  return x.graph()->AddNode(OpKind::kTranspose, {x}, Attrs{TransposeAttrs{std::move(perm)}});
}

Value TransposeLast2(Value x) {
  if (!x.valid()) return x;
  if (x.rank() < 2) {
    return x.graph()->Fail(
        "", absl::InvalidArgumentError(absl::StrCat("TransposeLast2 needs rank >= 2, got '",
                                                    x.name(), "' ", ShapeString(x.shape()))));
  }
  std::vector<int64_t> perm;
  for (int64_t i = 0; i < x.rank(); ++i) perm.push_back(i);
  std::swap(perm[perm.size() - 1], perm[perm.size() - 2]);
  return Transpose(x, std::move(perm));
}

Value BroadcastTo(Value x, Shape shape) {
  if (!x.valid()) return x;
  return x.graph()->AddNode(OpKind::kBroadcastTo, {x}, Attrs{ShapeAttrs{std::move(shape)}});
}

Value Slice(Value x, int64_t axis, int64_t start, int64_t size) {
  if (!x.valid()) return x;
  SliceAttrs a{NormAxis(axis, x.rank()), start, size};
  return x.graph()->AddNode(OpKind::kSlice, {x}, Attrs{a});
}

Value Pad(Value x, std::vector<int64_t> pads, double value) {
  if (!x.valid()) return x;
  PadAttrs a;
  a.value = value;
  for (size_t i = 0; i < pads.size(); ++i) (i % 2 == 0 ? a.before : a.after).push_back(pads[i]);
  return x.graph()->AddNode(OpKind::kPad, {x}, Attrs{a});
}

Value Concat(const std::vector<Value>& values, int64_t axis) {
  if (values.empty() || !values[0].valid()) return values.empty() ? Value() : values[0];
  ConcatAttrs a{NormAxis(axis, values[0].rank())};
  return values[0].graph()->AddNode(OpKind::kConcat, values, Attrs{a});
}

Value Clip(Value x, double lo, double hi) {
  if (!x.valid()) return x;
  return x.graph()->AddNode(OpKind::kClip, {x}, Attrs{ClipAttrs{lo, hi}});
}

Value Dropout(Value x, double p, int64_t seed) {
  if (!x.valid()) return x;
  Graph* g = x.graph();
  g->mark_mode_dependent();
  bool once = false;
  if (!g->training() || p == 0) return Record(x, "", "Dropout", 0, &once);
  return Record(g->AddNode(OpKind::kDropout, {x}, Attrs{DropoutAttrs{p, seed}}), "", "Dropout", 0,
                &once);
}

namespace {
Value Reduce(OpKind op, Value x, std::vector<int64_t> axes, bool keepdims) {
  if (!x.valid()) return x;
  if (axes.empty()) {
    for (int i = 0; i < x.rank(); ++i) axes.push_back(i);
  }
  for (int64_t& ax : axes) ax = NormAxis(ax, x.rank());
  return x.graph()->AddNode(op, {x}, Attrs{ReduceAttrs{std::move(axes), keepdims}});
}
}  // namespace

Value Sum(Value x, std::vector<int64_t> axes, bool keepdims) {
  return Reduce(OpKind::kSum, x, std::move(axes), keepdims);
}

Value Mean(Value x, std::vector<int64_t> axes, bool keepdims) {
  if (!x.valid()) return x;
  Value s = Sum(x, axes, keepdims);
  if (!s.valid()) return s;
  int64_t count = NumElements(x.shape()) / std::max<int64_t>(1, NumElements(s.shape()));
  return s * (1.0 / static_cast<double>(count));
}

Value Max(Value x, int64_t axis, bool keepdims) {
  return Reduce(OpKind::kMax, x, {axis}, keepdims);
}

Value ArgMax(Value x, int64_t axis) { return Reduce(OpKind::kArgMax, x, {axis}, false); }

Value MatMul(Value a, Value b) {
  if (a.valid() && b.valid() && a.rank() > 2 && b.rank() == 2) {
    // [..., M, K] x [K, N]: one [prod(...) M, K] x [K, N] product through reshape views, so the
    // weight gradient is one matmul, not a batch of them summed.
    Shape rows = a.shape();
    const int64_t k = rows.back();
    rows.pop_back();
    const int64_t m = NumElements(rows);
    Value y = Binary(OpKind::kMatMul, Reshape(a, {m, k}), b);
    if (!y.valid()) return y;
    rows.push_back(b.shape()[1]);
    return Reshape(y, rows);
  }
  return Binary(OpKind::kMatMul, a, b);
}

Value Conv2d(Value x, Value w, const ConvParams& p) {
  if (!x.valid()) return x;
  return x.graph()->AddNode(OpKind::kConv2D, {x, w}, Attrs{p});
}

namespace {
Attrs PoolAttrs(int64_t kernel, int64_t stride, int64_t padding) {
  return Attrs{Pool2dAttrs{kernel, stride == 0 ? kernel : stride, padding}};
}
}  // namespace

// max_pool2d(x) = gather(x, argmax over each window): the argmax is found once and reused by the
// backward pass.
Value MaxPool2d(Value x, int64_t kernel, int64_t stride, int64_t padding) {
  if (!x.valid()) return x;
  Attrs a = PoolAttrs(kernel, stride, padding);
  Value idx = x.graph()->AddNode(OpKind::kMaxPool2DArgmax, {x}, a);
  if (!idx.valid()) return idx;
  bool once = false;
  return Record(x.graph()->AddNode(OpKind::kMaxPool2DGather, {x, idx}, a), "", "MaxPool2D", 0,
                &once);
}

Value AvgPool2d(Value x, int64_t kernel, int64_t stride, int64_t padding) {
  if (!x.valid()) return x;
  bool once = false;
  return Record(x.graph()->AddNode(OpKind::kAvgPool2D, {x}, PoolAttrs(kernel, stride, padding)), "",
                "AvgPool2D", 0, &once);
}

// softmax(x) = exp(x - max x) / sum exp(x - max x): shifted by the max for stability.
Value GlobalAvgPool2d(Value x) {
  if (auto bad = Unusable("GlobalAvgPool2d", x, x)) return *bad;
  if (x.rank() != 4) {
    return x.graph()->Fail("GlobalAvgPool2d",
                           absl::InvalidArgumentError(
                               absl::StrCat("GlobalAvgPool2d: expected input [N, C, H, W], got '",
                                            x.name(), "' ", ShapeString(x.shape()))));
  }
  return Mean(x, {2, 3});
}

Value ScaledDotProductAttention(Value q, Value k, Value v) {
  if (auto bad = Unusable("ScaledDotProductAttention", q, k)) return *bad;
  if (auto bad = Unusable("ScaledDotProductAttention", v, v)) return *bad;
  Graph* g = q.graph();
  Graph::ErrorContext context(g, "ScaledDotProductAttention");
  const int r = q.rank();
  if (r < 2 || k.rank() != r || v.rank() != r || k.shape()[r - 1] != q.shape()[r - 1] ||
      v.shape()[r - 2] != k.shape()[r - 2]) {
    return g->Fail("", absl::InvalidArgumentError(absl::StrCat(
                           "expected q [..., Tq, d], k [..., Tk, d], v [..., Tk, dv], got ",
                           ShapeString(q.shape()), ", ", ShapeString(k.shape()), ", ",
                           ShapeString(v.shape()))));
  }
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.shape()[r - 1]));
  return MatMul(Softmax(MatMul(q, TransposeLast2(k)) * scale, -1), v);
}

Value Softmax(Value x, int64_t axis) {
  Value e = Exp(x - Max(x, axis, true));
  return e / Sum(e, {axis}, true);
}

// log_softmax(x) = (x - m) - log(sum exp(x - m)), m = max x.
Value LogSoftmax(Value x, int64_t axis) {
  Value shifted = x - Max(x, axis, true);
  return shifted - Log(Sum(Exp(shifted), {axis}, true));
}

Value SquareErrorCost(Value pred, Value label) {
  Graph::ErrorContext context(pred.graph(), "SquareErrorCost");
  return Square(pred - label);
}

// -sum(log_softmax(logits) * one_hot(labels)) over the class axis; its gradient simplifies to
// (softmax - one_hot) through the VJPs of the pieces.
Value SoftmaxCrossEntropy(Value logits, Value labels) {
  if (auto bad = Unusable("SoftmaxCrossEntropy", logits, labels)) return *bad;
  Graph* g = logits.graph();
  if (logits.rank() < 1) {  // found by tests/fuzz/graph_fuzz.cc: shape().back() of a scalar
    return g->Fail("SoftmaxCrossEntropy",
                   absl::InvalidArgumentError(absl::StrCat(
                       "SoftmaxCrossEntropy: expected logits [..., classes], got a scalar '",
                       logits.name(), "' ", ShapeString(logits.shape()))));
  }
  if (absl::Status s = CheckClassLabels("SoftmaxCrossEntropy", logits, labels); !s.ok()) {
    return g->Fail("SoftmaxCrossEntropy", s);
  }
  Graph::ErrorContext context(g, "SoftmaxCrossEntropy");
  return -Sum(LogSoftmax(logits, -1) * OneHot(labels, logits.shape().back()), {-1});
}

Value SoftmaxCrossEntropy(Value logits, Value labels, double smoothing) {
  if (smoothing == 0) return SoftmaxCrossEntropy(logits, labels);
  if (auto bad = Unusable("SoftmaxCrossEntropy", logits, labels)) return *bad;
  Graph* g = logits.graph();
  if (!(smoothing > 0 && smoothing < 1)) {
    return g->Fail(
        "SoftmaxCrossEntropy",
        absl::InvalidArgumentError(absl::StrCat(
            "SoftmaxCrossEntropy: expected label smoothing in [0, 1), got ", smoothing)));
  }
  Value plain = SoftmaxCrossEntropy(logits, labels);  // checks the shapes and labels
  if (!plain.valid()) return plain;
  Graph::ErrorContext context(g, "SoftmaxCrossEntropy");
  // (1 - s) CE(label) + s mean_k(-log p_k)
  const double classes = static_cast<double>(logits.shape().back());
  Value uniform = -Sum(LogSoftmax(logits, -1), {-1}) * (1 / classes);
  return (1 - smoothing) * plain + smoothing * uniform;
}

Value AccuracyCount(Value logits, Value labels) {
  if (auto bad = Unusable("AccuracyCount", logits, labels)) return *bad;
  if (logits.rank() >= 1) {
    if (absl::Status s = CheckClassLabels("AccuracyCount", logits, labels); !s.ok()) {
      return logits.graph()->Fail("AccuracyCount", s);
    }
  }
  Graph::ErrorContext context(logits.graph(), "AccuracyCount");
  return Sum(Equal(ArgMax(logits, -1), labels));
}

Linear::Linear(Graph& g, const std::string& name, int64_t in_features, int64_t out_features,
               Options options)
    : name_(name) {
  weight_ =
      g.Parameter(absl::StrCat(name, ".weight"), {in_features, out_features}, options.weight_init);
  if (options.bias) {
    bias_ = g.Parameter(absl::StrCat(name, ".bias"), {out_features}, options.bias_init);
  }
}

Value Linear::operator()(Value x) const {
  Graph::ErrorContext context(weight_.graph(), absl::StrCat("Linear '", name_, "'"));
  Value y = MatMul(x, weight_);
  if (bias_.valid()) y = y + bias_;
  return Record(y, name_, "Linear", Count(weight_, bias_), &applied_);
}

MultiHeadAttention::MultiHeadAttention(Graph& g, const std::string& name, int64_t dim,
                                       int64_t heads, Linear::Options options)
    : name_(name),
      dim_(dim),
      heads_(heads),
      q_(g, name + ".q", dim, dim, options),
      k_(g, name + ".k", dim, dim, options),
      v_(g, name + ".v", dim, dim, options),
      out_(g, name + ".out", dim, dim, options) {}

Value MultiHeadAttention::operator()(Value x) const {
  if (auto bad = Unusable("MultiHeadAttention", x, x)) return *bad;
  Graph* g = x.graph();
  Graph::ErrorContext context(g, absl::StrCat("MultiHeadAttention '", name_, "'"));
  if (heads_ < 1 || dim_ % heads_ != 0) {
    return g->Fail("", absl::InvalidArgumentError(absl::StrCat("expected heads >= 1 dividing dim ",
                                                               dim_, ", got heads = ", heads_)));
  }
  if (x.rank() != 3 || x.shape()[2] != dim_) {
    return g->Fail(
        "", absl::InvalidArgumentError(absl::StrCat("expected input [B, T, ", dim_, "], got '",
                                                    x.name(), "' ", ShapeString(x.shape()))));
  }
  const int64_t b = x.shape()[0], t = x.shape()[1], d = dim_ / heads_;
  auto split_heads = [&](Value y) {  // [B, T, dim] -> [B, heads, T, d]
    return Transpose(Reshape(y, {b, t, heads_, d}), {0, 2, 1, 3});
  };
  Value o = ScaledDotProductAttention(split_heads(q_(x)), split_heads(k_(x)), split_heads(v_(x)));
  Value y = out_(Reshape(Transpose(o, {0, 2, 1, 3}), {b, t, dim_}));
  return Record(y, name_, "MultiHeadAttention", 0, &applied_);
}

Conv2D::Conv2D(Graph& g, const std::string& name, int64_t in_channels, int64_t out_channels,
               int64_t kernel, Options options)
    : name_(name), options_(options) {
  weight_ = g.Parameter(absl::StrCat(name, ".weight"), {out_channels, in_channels, kernel, kernel},
                        options.weight_init);
  if (options.bias) {
    bias_ = g.Parameter(absl::StrCat(name, ".bias"), {out_channels}, options.bias_init);
  }
}

Value Conv2D::operator()(Value x) const {
  Graph::ErrorContext context(weight_.graph(), absl::StrCat("Conv2D '", name_, "'"));
  Value y =
      Conv2d(x, weight_, ConvParams::Same(options_.stride, options_.padding, options_.dilation));
  if (bias_.valid() && y.valid()) y = y + Reshape(bias_, {bias_.shape()[0], 1, 1});
  return Record(y, name_, "Conv2D", Count(weight_, bias_), &applied_);
}

BatchNorm::BatchNorm(Graph& g, const std::string& name, int64_t channels, Options options)
    : name_(name), options_(options) {
  gamma_ = g.Parameter(absl::StrCat(name, ".weight"), {channels}, Initializer::Constant(1));
  beta_ = g.Parameter(absl::StrCat(name, ".bias"), {channels}, Initializer::Zeros());
  running_mean_ = g.Buffer(absl::StrCat(name, ".running_mean"), {channels}, Initializer::Zeros());
  running_var_ = g.Buffer(absl::StrCat(name, ".running_var"), {channels}, Initializer::Constant(1));
  g.mark_mode_dependent();
}

// y = (x - mean) / sqrt(var + eps) * gamma + beta, statistics over every axis but 1.
Value BatchNorm::operator()(Value x) const {
  if (auto bad = Unusable("BatchNorm", x, gamma_)) return *bad;
  Graph* g = x.graph();
  Graph::ErrorContext context(g, absl::StrCat("BatchNorm '", name_, "'"));
  if (x.rank() < 2 || x.shape()[1] != gamma_.shape()[0]) {
    return g->Fail("", absl::InvalidArgumentError(
                           absl::StrCat("expected input [N, ", gamma_.shape()[0], ", ...], got '",
                                        x.name(), "' ", ShapeString(x.shape()))));
  }
  std::vector<int64_t> axes;
  Shape keep(x.rank(), 1);
  keep[1] = x.shape()[1];
  for (int i = 0; i < x.rank(); ++i) {
    if (i != 1) axes.push_back(i);
  }
  Value mean, var;
  if (g->training()) {
    mean = Mean(x, axes, true);
    var = Mean(Square(x - mean), axes, true);
    const double count = static_cast<double>(NumElements(x.shape()) / x.shape()[1]);
    const double m = options_.momentum;
    Shape c = {x.shape()[1]};
    g->SetBufferUpdate(running_mean_, running_mean_ * (1 - m) + Reshape(mean, c) * m);
    g->SetBufferUpdate(running_var_, running_var_ * (1 - m) +
                                         Reshape(var, c) * (m * count / std::max(1.0, count - 1)));
  } else {
    mean = Reshape(running_mean_, keep);
    var = Reshape(running_var_, keep);
  }
  Value y = (x - mean) / Sqrt(var + options_.eps);
  return Record(y * Reshape(gamma_, keep) + Reshape(beta_, keep), name_, "BatchNorm",
                Count(gamma_, beta_), &applied_);
}

LayerNorm::LayerNorm(Graph& g, const std::string& name, int64_t features, Options options)
    : name_(name), features_(features), options_(options) {
  if (options.affine) {
    gamma_ = g.Parameter(absl::StrCat(name, ".weight"), {features}, Initializer::Constant(1));
    beta_ = g.Parameter(absl::StrCat(name, ".bias"), {features}, Initializer::Zeros());
  }
}

// y = (x - mean) / sqrt(var + eps) [* gamma + beta], statistics over the last axis.
Value LayerNorm::operator()(Value x) const {
  if (auto bad = Unusable("LayerNorm", x, x)) return *bad;
  Graph* g = x.graph();
  Graph::ErrorContext context(g, absl::StrCat("LayerNorm '", name_, "'"));
  if (x.rank() < 1 || x.shape().back() != features_) {
    return g->Fail(
        "", absl::InvalidArgumentError(absl::StrCat("expected input [..., ", features_, "], got '",
                                                    x.name(), "' ", ShapeString(x.shape()))));
  }
  if (!(options_.eps > 0)) {
    return g->Fail(
        "", absl::InvalidArgumentError(absl::StrCat("expected eps > 0, got ", options_.eps)));
  }
  Value mean = Mean(x, {-1}, true);
  Value centered = x - mean;
  Value y = centered / Sqrt(Mean(Square(centered), {-1}, true) + options_.eps);
  if (options_.affine) y = y * gamma_ + beta_;
  return Record(y, name_, "LayerNorm", Count(gamma_, beta_), &applied_);
}

}  // namespace kiln
