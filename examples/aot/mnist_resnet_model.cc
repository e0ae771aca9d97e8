// The small ResNet as an ahead-of-time training program (examples/aot/CMakeLists.txt builds
// mnist_resnet_train from it), with the recipe of examples/mnist_resnet.cc: Adam 2e-3, cosine
// schedule, random shifts of up to 2 pixels, 12 epochs, batch 64. Its training step is over
// CompileOptions::max_pipeline_stages, so the binary holds it as several pipelines.
#include "compiler/aot.h"
#include "examples/models.h"

kiln::AotModel KilnAotModel() {
  kiln::AotModel m;
  m.build = kiln::examples::MnistResNet;
  m.optimizer = "adam";
  m.defaults.epochs = 12;
  m.defaults.lr = 2e-3;
  m.defaults.lr_schedule = "cosine";
  m.defaults.random_shift = 2;
  m.defaults.log_every = 200;
  return m;
}
