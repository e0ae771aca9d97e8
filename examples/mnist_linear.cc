// The beginner tutorial exactly: Linear(784 -> 1) regressing the digit value, square error cost,
// SGD lr 0.001, batch 16, shuffled, 10 epochs, loss printed every 1000 batches. Its homework:
// test accuracy by rounding the regression output to a digit (poor by design: that is the lesson).
#include "dsl/api.h"
#include "examples/example_main.h"

namespace {

kiln::ModelDef BuildModel(kiln::Graph& g, int64_t batch) {
  kiln::Value image = g.Input("image", {batch, 784});
  kiln::Value label = g.Input("label", {batch}, kiln::DType::kInt32);
  kiln::Value pred = kiln::Linear(g, "fc", 784, 1)(image);                 // [batch, 1]
  kiln::Value target = kiln::Reshape(kiln::ToFloat(label), {batch, 1});
  kiln::ModelDef m;
  m.inputs = {image, label};
  m.loss = kiln::Mean(kiln::SquareErrorCost(pred, target));
  kiln::Value digit = kiln::RoundToInt(kiln::Reshape(pred, {batch}), 0, 9);
  m.eval_outputs = {{"prediction", digit}};
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  kiln::examples::Example e{
      "mnist_linear",
      "The tutorial's linear regression on MNIST: Linear(784->1), square error, SGD.",
      BuildModel,
      [](double lr) { return std::make_unique<kiln::Sgd>(lr); },
      /*epochs=*/10, /*batch_size=*/16, /*lr=*/0.001, /*log_every=*/1000};
  return kiln::examples::RunExample(argc, argv, e);
}
