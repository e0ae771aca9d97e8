// Softmax regression on MNIST, defined outside Kiln's tree: an AOT model file for
// kiln_add_training_binary and kiln-aot, and the model of jit_softmax.
#include "compiler/aot.h"
#include "dsl/api.h"

kiln::ModelDef Softmax(kiln::Graph& g, int64_t batch) {
  kiln::ModelDef m;
  kiln::Value image = g.Input("image", {batch, 784}, kiln::DType::kUInt8);
  kiln::Value label = g.Input("label", {batch}, kiln::DType::kInt32);
  kiln::Value logits = kiln::Linear(g, "fc", 784, 10)(kiln::UnitPixels(image));
  m.inputs = {image, label};
  m.loss = kiln::Mean(kiln::SoftmaxCrossEntropy(logits, label));
  m.metrics = {{"correct", kiln::AccuracyCount(logits, label)}};
  m.eval_outputs = {{"prediction", kiln::ArgMax(logits, 1)}};
  return m;
}

#ifndef JIT_MAIN
kiln::AotModel KilnAotModel() {
  kiln::AotModel m;
  m.build = Softmax;
  m.optimizer = "sgd";
  m.defaults.epochs = 1;
  m.defaults.lr = 0.2;
  return m;
}
#endif
