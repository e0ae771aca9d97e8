// The tutorial's next step: a multilayer perceptron 784-128-64-10 with ReLU (109,386
// parameters), softmax cross-entropy, Adam with cosine decay.
#include "examples/example_main.h"
#include "examples/models.h"

int main(int argc, char** argv) {
  kiln::examples::Example e{"mnist_mlp",
                            "MLP 784-128-64-10 on MNIST, softmax cross-entropy, Adam.",
                            kiln::examples::MnistMlp,
                            "adam",
                            /*epochs=*/20,
                            /*batch_size=*/64,
                            /*lr=*/1e-3,
                            /*log_every=*/200,
                            /*predict=*/"",
                            /*lr_schedule=*/"cosine"};
  return kiln::examples::RunExample(argc, argv, e);
}
