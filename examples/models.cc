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

ModelDef MnistCnn(Graph& g, int64_t batch) {
  Value image = g.Input("image", {batch, 784}, DType::kUInt8);  // raw pixels
  Value pixels = UnitPixels(image);
  Value label = g.Input("label", {batch}, DType::kInt32);
  Conv2D::Options same;
  same.padding = 2;
  auto pool = [](Value v) { return MaxPool2d(v, 2); };
  auto flatten = [](Value v) { return Flatten(v); };
  Sequential net;
  net.Add(Conv2D(g, "conv1", 1, 20, 5, same)).Add(Relu).Add(pool);
  net.Add(Conv2D(g, "conv2", 20, 20, 5, same)).Add(Relu).Add(pool);
  net.Add(flatten).Add(Linear(g, "fc", 980, 10));
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

}  // namespace kiln::examples
