#include "examples/models.h"

#include "dsl/api.h"

namespace kiln::examples {

ModelDef MnistLinear(Graph& g, int64_t batch) {
  Value image = g.Input("image", {batch, 784});
  Value label = g.Input("label", {batch}, DType::kInt32);
  Value pred = Linear(g, "fc", 784, 1)(image);  // [batch, 1]
  Value target = Reshape(ToFloat(label), {batch, 1});
  ModelDef m;
  m.inputs = {image, label};
  m.loss = Mean(SquareErrorCost(pred, target));
  m.eval_outputs = {{"prediction", RoundToInt(Reshape(pred, {batch}), 0, 9)}};
  return m;
}

namespace {
ModelDef Classifier(Value image, Value label, Value logits) {
  ModelDef m;
  m.inputs = {image, label};
  m.loss = Mean(SoftmaxCrossEntropy(logits, label));
  m.metrics = {{"correct", AccuracyCount(logits, label)}};
  m.eval_outputs = {{"prediction", ArgMax(logits, 1)}};
  return m;
}
}  // namespace

ModelDef MnistMlp(Graph& g, int64_t batch) {
  Value image = g.Input("image", {batch, 784});
  Value label = g.Input("label", {batch}, DType::kInt32);
  Linear::Options relu_init;
  relu_init.weight_init = Initializer::KaimingUniform();
  Value h = Relu(Linear(g, "fc1", 784, 128, relu_init)(image));
  return Classifier(image, label, Linear(g, "fc2", 128, 10)(h));
}

ModelDef MnistSoftmax(Graph& g, int64_t batch) {
  Value image = g.Input("image", {batch, 784});
  Value label = g.Input("label", {batch}, DType::kInt32);
  return Classifier(image, label, Linear(g, "fc", 784, 10)(image));
}

}  // namespace kiln::examples
