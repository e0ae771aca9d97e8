// The tutorial's next step: a multilayer perceptron, Linear(784 -> 128), ReLU, Linear(128 -> 10),
// softmax cross-entropy, SGD.
#include "examples/example_main.h"
#include "examples/models.h"

int main(int argc, char** argv) {
  kiln::examples::Example e{
      "mnist_mlp",
      "MLP on MNIST: Linear(784->128), ReLU, Linear(128->10), softmax cross-entropy, SGD.",
      kiln::examples::MnistMlp,
      "sgd",
      /*epochs=*/10,
      /*batch_size=*/64,
      /*lr=*/0.1,
      /*log_every=*/200};
  return kiln::examples::RunExample(argc, argv, e);
}
