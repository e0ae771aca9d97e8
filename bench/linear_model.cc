// The tutorial's linear model (784 -> 1, square error, SGD, batch 16) as an AOT training program,
// for bench/run.sh's per-step comparison of AOT, JIT and the peers.
#include "compiler/aot.h"
#include "examples/models.h"

kiln::AotModel KilnAotModel() {
  kiln::AotModel m;
  m.build = kiln::examples::MnistLinear;
  m.optimizer = "sgd";
  m.defaults.epochs = 1;
  m.defaults.lr = 0.001;
  return m;
}
