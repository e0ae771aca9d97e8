// The README's complete model, built and run by the tests so the README cannot drift from the
// API. Run from the repository root after ./run.sh or ./test.sh has fetched the data.
#include <cstdio>

#include "compiler/model.h"
#include "dsl/api.h"
#include "runtime/idx.h"
#include "runtime/trainer.h"

kiln::ModelDef Softmax(kiln::Graph& g, int64_t batch) {
  kiln::Value image = g.Input("image", {batch, 784});
  kiln::Value label = g.Input("label", {batch}, kiln::DType::kInt32);
  kiln::Value logits = kiln::Linear(g, "fc", 784, 10)(image);
  kiln::ModelDef m;
  m.inputs = {image, label};
  m.loss = kiln::Mean(kiln::SoftmaxCrossEntropy(logits, label));
  m.metrics = {{"correct", kiln::AccuracyCount(logits, label)}};
  m.eval_outputs = {{"prediction", kiln::ArgMax(logits, 1)}};
  return m;
}

int main() {
  kiln::Graph tg, eg(kiln::Mode::kEval);
  auto train = kiln::CompileTrainStep(tg, Softmax(tg, 64), kiln::Sgd(0.1), {});  // one pipeline
  auto eval = kiln::CompileEvalStep(eg, Softmax(eg, 1000), {});                  // another
  if (!train.ok() || !eval.ok()) return 1;  // shape errors name the op, node and shapes
  auto data = kiln::LoadMnist("data/mnist", kiln::MnistSplit::kTrain);
  auto test = kiln::LoadMnist("data/mnist", kiln::MnistSplit::kTest);
  kiln::Trainer trainer(train->get(), eval->get());
  trainer.Initialize(/*seed=*/1).IgnoreError();
  kiln::TrainConfig config;
  config.epochs = 5;
  trainer.Train(*data, config).IgnoreError();
  std::printf("test accuracy %.4f\n", trainer.Evaluate(*test)->accuracy());
  trainer.Save("softmax.safetensors").IgnoreError();
}
