// A small residual network (one basic block per stage, batch norm, 16-32-64 channels, global
// average pooling; examples/models.h) trained with Adam, a cosine schedule and random shifts: the
// documented recipe for at least 99.5% test accuracy.
#include "examples/example_main.h"
#include "examples/models.h"

int main(int argc, char** argv) {
  kiln::examples::Example e{
      "mnist_resnet",
      "Small ResNet (16-32-64 channels, batch norm, global average pooling) on MNIST, Adam, "
      "cosine schedule, random shifts.",
      kiln::examples::MnistResNet,
      "adam",
      /*epochs=*/12,
      /*batch_size=*/64,
      /*lr=*/2e-3,
      /*log_every=*/200,
      /*predict=*/"",
      /*lr_schedule=*/"cosine",
      /*random_shift=*/2};
  return kiln::examples::RunExample(argc, argv, e);
}
