// Softmax regression: Linear(784 -> 10) with softmax cross-entropy on integer labels, SGD.
#include "dsl/api.h"
#include "examples/example_main.h"

namespace {

kiln::ModelDef BuildModel(kiln::Graph& g, int64_t batch) {
  kiln::Value image = g.Input("image", {batch, 784});
  kiln::Value label = g.Input("label", {batch}, kiln::DType::kInt32);
  kiln::Value logits = kiln::Linear(g, "fc", 784, 10)(image);
  kiln::ModelDef m;
  m.inputs = {image, label};
  m.loss = kiln::Mean(kiln::SoftmaxCrossEntropy(logits, label));
  m.metrics = {{"correct", kiln::AccuracyCount(logits, label)}};
  m.eval_outputs = {{"prediction", kiln::ArgMax(logits, 1)}};
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  kiln::examples::Example e{
      "mnist_softmax",
      "Softmax regression on MNIST: Linear(784->10), softmax cross-entropy, SGD.",
      BuildModel,
      [](double lr) { return std::make_unique<kiln::Sgd>(lr); },
      /*epochs=*/5, /*batch_size=*/64, /*lr=*/0.1, /*log_every=*/200};
  return kiln::examples::RunExample(argc, argv, e);
}
