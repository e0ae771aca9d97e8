// LeNet-5 on MNIST (28x28 padded to 32x32 by the first convolution), Adam with cosine decay,
// training images shifted by up to 2 pixels.
#include "examples/example_main.h"
#include "examples/models.h"

int main(int argc, char** argv) {
  kiln::examples::Example e{
      "mnist_lenet5",
      "LeNet-5 on MNIST: conv5x5(6)-pool-conv5x5(16)-pool-fc120-fc84-fc10, Adam.",
      kiln::examples::MnistLeNet5,
      "adam",
      /*epochs=*/10,
      /*batch_size=*/64,
      /*lr=*/2e-3,
      /*log_every=*/200,
      /*predict=*/"",
      /*lr_schedule=*/"cosine",
      /*random_shift=*/2};
  return kiln::examples::RunExample(argc, argv, e);
}
