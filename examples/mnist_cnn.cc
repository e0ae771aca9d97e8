// The tutorial's CNN on MNIST: two 5x5 convolutions with ReLU and 2x2 max pooling, then a fully
// connected layer to 10 classes; softmax cross-entropy, Adam (lr 2e-3, cosine decay over the run),
// training images shifted by up to 2 pixels.
#include "examples/example_main.h"
#include "examples/models.h"

int main(int argc, char** argv) {
  kiln::examples::Example e{
      "mnist_cnn",
      "The tutorial CNN on MNIST: conv5x5(20)-pool-conv5x5(20)-pool-fc(10), Adam.",
      kiln::examples::MnistCnn,
      "adam",
      /*epochs=*/5,
      /*batch_size=*/64,
      /*lr=*/2e-3,
      /*log_every=*/200,
      /*predict=*/"",
      /*lr_schedule=*/"cosine",
      /*random_shift=*/2};
  return kiln::examples::RunExample(argc, argv, e);
}
