#include "examples/models.h"

#include "dsl/api.h"

namespace kiln::examples {

ModelDef MnistLinear(Graph& g, int64_t batch) {
  Value image = g.Input("image", {batch, 784}, DType::kUInt8);  // raw pixels
  Value pixels = UnitPixels(image);
  Value label = g.Input("label", {batch}, DType::kInt32);
  Value pred = Linear(g, "fc", 784, 1)(pixels);  // [batch, 1]
  Value target = Reshape(ToFloat(label), {batch, 1});
  ModelDef m;
  m.inputs = {image, label};
  m.loss = Mean(SquareErrorCost(pred, target));
  m.eval_outputs = {{"prediction", RoundToInt(Reshape(pred, {batch}), 0, 9)}};
  return m;
}

ModelDef Classifier(Value image, Value label, Value logits) {
  ModelDef m;
  m.inputs = {image, label};
  m.loss = Mean(SoftmaxCrossEntropy(logits, label));
  m.metrics = {{"correct", AccuracyCount(logits, label)}};
  m.eval_outputs = {{"prediction", ArgMax(logits, 1)}};
  return m;
}

ModelDef MnistMlp(Graph& g, int64_t batch) {
  Value image = g.Input("image", {batch, 784}, DType::kUInt8);  // raw pixels
  Value pixels = UnitPixels(image);
  Value label = g.Input("label", {batch}, DType::kInt32);
  Linear::Options relu_init;
  relu_init.weight_init = Initializer::KaimingUniform();
  Value h = Relu(Linear(g, "fc1", 784, 128, relu_init)(pixels));
  h = Relu(Linear(g, "fc2", 128, 64, relu_init)(h));
  return Classifier(image, label, Linear(g, "fc3", 64, 10)(h));
}

ModelDef MnistSoftmax(Graph& g, int64_t batch) {
  Value image = g.Input("image", {batch, 784}, DType::kUInt8);  // raw pixels
  Value pixels = UnitPixels(image);
  Value label = g.Input("label", {batch}, DType::kInt32);
  return Classifier(image, label, Linear(g, "fc", 784, 10)(pixels));
}

ModelDef MnistCnn(Graph& g, int64_t batch) { return MnistCnnOfWidth(g, batch, 20); }

ModelDef MnistCnnOfWidth(Graph& g, int64_t batch, int64_t width) {
  Value image = g.Input("image", {batch, 784}, DType::kUInt8);  // raw pixels
  Value pixels = UnitPixels(image);
  Value label = g.Input("label", {batch}, DType::kInt32);
  Conv2D::Options same;
  same.padding = 2;
  auto pool = [](Value v) { return MaxPool2d(v, 2); };
  auto flatten = [](Value v) { return Flatten(v); };
  Sequential net;
  net.Add(Conv2D(g, "conv1", 1, width, 5, same)).Add(Relu).Add(pool);
  net.Add(Conv2D(g, "conv2", width, width, 5, same)).Add(Relu).Add(pool);
  net.Add(flatten).Add(Linear(g, "fc", width * 49, 10));
  return Classifier(image, label, net(Reshape(pixels, {batch, 1, 28, 28})));
}

ModelDef MnistLeNet5(Graph& g, int64_t batch) {
  Value image = g.Input("image", {batch, 784}, DType::kUInt8);  // raw pixels
  Value pixels = UnitPixels(image);
  Value label = g.Input("label", {batch}, DType::kInt32);
  Conv2D::Options pad2;
  pad2.padding = 2;  // 28 -> 32 as LeNet-5's 32x32 input, then the valid 5x5 convolution
  Linear::Options relu_init;
  relu_init.weight_init = Initializer::KaimingUniform();
  Value x = Reshape(pixels, {batch, 1, 28, 28});
  x = MaxPool2d(Relu(Conv2D(g, "c1", 1, 6, 5, pad2)(x)), 2);  // 6 x 14 x 14
  x = MaxPool2d(Relu(Conv2D(g, "c3", 6, 16, 5)(x)), 2);       // 16 x 5 x 5
  x = Relu(Linear(g, "f5", 400, 120, relu_init)(Flatten(x)));
  x = Relu(Linear(g, "f6", 120, 84, relu_init)(x));
  return Classifier(image, label, Linear(g, "f7", 84, 10)(x));
}

ModelDef MnistCnnBn(Graph& g, int64_t batch) {
  Value image = g.Input("image", {batch, 784}, DType::kUInt8);  // raw pixels
  Value pixels = UnitPixels(image);
  Value label = g.Input("label", {batch}, DType::kInt32);
  Conv2D::Options same;
  same.padding = 2;
  same.bias = false;  // batch norm's shift replaces it
  Value x = Reshape(pixels, {batch, 1, 28, 28});
  x = MaxPool2d(Relu(BatchNorm(g, "bn1", 20)(Conv2D(g, "conv1", 1, 20, 5, same)(x))), 2);
  x = MaxPool2d(Relu(BatchNorm(g, "bn2", 20)(Conv2D(g, "conv2", 20, 20, 5, same)(x))), 2);
  x = Dropout(Flatten(x), 0.25, /*seed=*/1);
  return Classifier(image, label, Linear(g, "fc", 980, 10)(x));
}

namespace {

// MNIST's mean and standard deviation, the usual input normalization.
Value NormalizedPixels(Value image) { return (UnitPixels(image) - 0.1307) * (1 / 0.3081); }

// conv (no bias) + batch norm.
Value ConvBn(Graph& g, const std::string& name, Value x, int64_t in, int64_t out, int64_t kernel,
             int64_t stride) {
  Conv2D::Options o;
  o.stride = stride;
  o.padding = kernel / 2;
  o.bias = false;
  return BatchNorm(g, name + ".bn", out)(Conv2D(g, name + ".conv", in, out, kernel, o)(x));
}

// relu(bn(conv(relu(bn(conv(x))))) + shortcut(x)); the shortcut is x itself or, where the block
// changes stride or width, a 1x1 conv + batch norm.
Value BasicBlock(Graph& g, const std::string& name, Value x, int64_t in, int64_t out,
                 int64_t stride) {
  Value y = Relu(ConvBn(g, name + ".a", x, in, out, 3, stride));
  y = ConvBn(g, name + ".b", y, out, out, 3, 1);
  Value shortcut = stride == 1 && in == out ? x : ConvBn(g, name + ".down", x, in, out, 1, stride);
  return Relu(y + shortcut);
}

}  // namespace

ModelDef MnistResNet(Graph& g, int64_t batch) {
  Value image = g.Input("image", {batch, 784}, DType::kUInt8);  // raw pixels
  Value label = g.Input("label", {batch}, DType::kInt32);
  Value x = Reshape(NormalizedPixels(image), {batch, 1, 28, 28});
  x = Relu(ConvBn(g, "stem", x, 1, 16, 3, 1));
  x = BasicBlock(g, "stage1", x, 16, 16, 1);
  x = BasicBlock(g, "stage2", x, 16, 32, 2);
  x = BasicBlock(g, "stage3", x, 32, 64, 2);
  return Classifier(image, label, Linear(g, "fc", 64, 10)(GlobalAvgPool2d(x)));
}

ModelDef MnistVit(Graph& g, int64_t batch) {
  constexpr int64_t kWidth = 64, kHeads = 4, kBlocks = 4, kHidden = 128, kTokens = 16;
  Value image = g.Input("image", {batch, 784}, DType::kUInt8);  // raw pixels
  Value label = g.Input("label", {batch}, DType::kInt32);
  // [B, 28, 28] as [B, 4, 7, 4, 7] (patch row, pixel row, patch column, pixel column), patches
  // first: [B, 16, 49], row-major pixels within each patch. Views, read by the embedding matmul.
  Value patches =
      Reshape(Transpose(Reshape(NormalizedPixels(image), {batch, 4, 7, 4, 7}), {0, 1, 3, 2, 4}),
              {batch, kTokens, 49});
  Linear::Options init;
  init.weight_init = Initializer::TruncatedNormal(0, 0.02);
  Value tokens = Linear(g, "patch_embed", 49, kWidth, init)(patches);
  Value cls = g.Parameter("cls_token", {1, 1, kWidth}, Initializer::TruncatedNormal(0, 0.02));
  Value pos =
      g.Parameter("pos_embed", {1, kTokens + 1, kWidth}, Initializer::TruncatedNormal(0, 0.02));
  Value h = Concat({BroadcastTo(cls, {batch, 1, kWidth}), tokens}, 1) + pos;
  for (int i = 0; i < kBlocks; ++i) {
    const std::string b = "block" + std::to_string(i);
    Value a = LayerNorm(g, b + ".norm1", kWidth)(h);
    h = h + MultiHeadAttention(g, b + ".attn", kWidth, kHeads, init)(a);
    Value m = LayerNorm(g, b + ".norm2", kWidth)(h);
    m = Gelu(Linear(g, b + ".fc1", kWidth, kHidden, init)(m), GeluApproximation::kTanh);
    h = h + Linear(g, b + ".fc2", kHidden, kWidth, init)(m);
  }
  h = LayerNorm(g, "norm", kWidth)(h);
  Value cls_out = Reshape(Slice(h, 1, 0, 1), {batch, kWidth});
  return Classifier(image, label, Linear(g, "head", kWidth, 10, init)(cls_out));
}

bool VitDecays(const std::string& param) {
  auto ends_with = [&](const std::string& s) {
    return param.size() >= s.size() && param.compare(param.size() - s.size(), s.size(), s) == 0;
  };
  if (ends_with(".bias") || param == "cls_token" || param == "pos_embed") return false;
  return param.find("norm") == std::string::npos;
}

}  // namespace kiln::examples
