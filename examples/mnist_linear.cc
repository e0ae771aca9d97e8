// The beginner tutorial exactly: Linear(784 -> 1) regressing the digit value, square error cost,
// SGD lr 0.001, batch 16, shuffled, 10 epochs, loss printed every 1000 batches, parameters saved,
// a loss curve, one image predicted, and the homework: test accuracy by rounding the regression
// output to a digit (poor by design: that is the tutorial's lesson).
#include "examples/example_main.h"
#include "examples/models.h"

int main(int argc, char** argv) {
  kiln::examples::Example e{
      "mnist_linear",
      "The tutorial's linear regression on MNIST: Linear(784->1), square error, SGD.",
      kiln::examples::MnistLinear,
      "sgd",
      /*epochs=*/10,
      /*batch_size=*/16,
      /*lr=*/0.001,
      /*log_every=*/1000,
      /*predict=*/KILN_SOURCE_DIR "/examples/data/digit_7.png"};
  return kiln::examples::RunExample(argc, argv, e);
}
