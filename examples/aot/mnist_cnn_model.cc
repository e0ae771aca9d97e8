// The tutorial CNN as an ahead-of-time training program: examples/aot/CMakeLists.txt turns this
// file into the standalone executable mnist_cnn_train (same recipe as examples/mnist_cnn.cc:
// Adam 2e-3 with a cosine schedule, random shifts of up to 2 pixels, 5 epochs, batch 64).
#include "compiler/aot.h"
#include "examples/models.h"

kiln::AotModel KilnAotModel() {
  kiln::AotModel m;
  m.build = kiln::examples::MnistCnn;
  m.optimizer = "adam";
  m.defaults.epochs = 5;
  m.defaults.lr = 2e-3;
  m.defaults.lr_schedule = "cosine";
  m.defaults.random_shift = 2;
  m.defaults.log_every = 200;
  return m;
}
