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

ModelDef MnistSoftmax(Graph& g, int64_t batch) {
  Value image = g.Input("image", {batch, 784});
  Value label = g.Input("label", {batch}, DType::kInt32);
  Value logits = Linear(g, "fc", 784, 10)(image);
  ModelDef m;
  m.inputs = {image, label};
  m.loss = Mean(SoftmaxCrossEntropy(logits, label));
  m.metrics = {{"correct", AccuracyCount(logits, label)}};
  m.eval_outputs = {{"prediction", ArgMax(logits, 1)}};
  return m;
}

}  // namespace kiln::examples
