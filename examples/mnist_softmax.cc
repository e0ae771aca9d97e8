// Softmax regression: Linear(784 -> 10) with softmax cross-entropy on integer labels, SGD.
#include "examples/example_main.h"
#include "examples/models.h"

int main(int argc, char** argv) {
  kiln::examples::Example e{
      "mnist_softmax",
      "Softmax regression on MNIST: Linear(784->10), softmax cross-entropy, SGD.",
      kiln::examples::MnistSoftmax,
      "sgd",
      /*epochs=*/10,
      /*batch_size=*/64,
      /*lr=*/0.2,
      /*log_every=*/200};
  return kiln::examples::RunExample(argc, argv, e);
}
