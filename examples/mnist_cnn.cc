// The tutorial's CNN on MNIST: two 5x5 convolutions with ReLU and 2x2 max pooling, then a fully
// connected layer to 10 classes; softmax cross-entropy, Adam.
#include "examples/example_main.h"
#include "examples/models.h"

int main(int argc, char** argv) {
  kiln::examples::Example e{
      "mnist_cnn",
      "The tutorial CNN on MNIST: conv5x5(20)-pool-conv5x5(20)-pool-fc(10), Adam.",
      kiln::examples::MnistCnn,
      "adam",
      /*epochs=*/5, /*batch_size=*/64, /*lr=*/1e-3, /*log_every=*/200};
  return kiln::examples::RunExample(argc, argv, e);
}
