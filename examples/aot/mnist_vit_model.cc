// The small vision transformer as an ahead-of-time training program (examples/aot/CMakeLists.txt
// builds mnist_vit_train from it), with the recipe of examples/mnist_vit.cc: AdamW 1e-3 with
// weight decay 0.05 on weights only (not biases, norms or embeddings), cosine schedule after 500
// warm-up steps, random shifts of up to 2 pixels, 20 epochs, batch 64. Its steps are compiled as
// several pipelines each.
#include "compiler/aot.h"
#include "examples/models.h"

kiln::AotModel KilnAotModel() {
  kiln::AotModel m;
  m.build = kiln::examples::MnistVit;
  m.optimizer = "adamw";
  m.weight_decay = 0.05;
  m.decays = kiln::examples::VitDecays;
  m.defaults.epochs = 20;
  m.defaults.lr = 1e-3;
  m.defaults.lr_schedule = "cosine,warmup:500";
  m.defaults.random_shift = 2;
  m.defaults.log_every = 200;
  return m;
}
