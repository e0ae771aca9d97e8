// The README's complete model, built and run by the tests so the README cannot drift from the
// API. Run from the repository root after ./run.sh or ./test.sh has fetched the data.
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "compiler/model.h"
#include "dsl/api.h"
#include "runtime/idx.h"
#include "runtime/trainer.h"

// Every Kiln error names what went wrong (the op, node and shapes; the file; the flag): print it.
void Check(const absl::Status& s) {
  if (s.ok()) return;
  std::fprintf(stderr, "error: %s\n", s.ToString().c_str());
  std::exit(1);
}
template <typename T>
T Check(absl::StatusOr<T> v) {
  Check(v.status());
  return std::move(*v);
}

kiln::ModelDef Softmax(kiln::Graph& g, int64_t batch) {
  kiln::Value image = g.Input("image", {batch, 784});
  kiln::Value label = g.Input("label", {batch}, kiln::DType::kInt32);
  kiln::Value logits = kiln::Linear(g, "fc", 784, 10)(image);
  kiln::ModelDef m;
  m.inputs = {image, label};
  m.example = image;  // what the data feeds: examples and their targets
  m.target = label;
  m.loss = kiln::Mean(kiln::SoftmaxCrossEntropy(logits, label));
  m.metrics = {{"correct", kiln::AccuracyCount(logits, label)}};  // training accuracy
  m.eval_outputs = {{"prediction", kiln::ArgMax(logits, 1)}};     // test accuracy
  return m;
}

int main() {
  // One Halide pipeline for the training step (forward, backward, SGD update), one to evaluate.
  kiln::Graph tg, eg(kiln::Mode::kEval);
  auto train = Check(kiln::CompileTrainStep(tg, Softmax(tg, 64), kiln::Sgd(0.1), {}));
  auto eval = Check(kiln::CompileEvalStep(eg, Softmax(eg, 1000), {}));
  kiln::Dataset data = Check(kiln::LoadMnist("data/mnist", kiln::MnistSplit::kTrain));
  kiln::Dataset test = Check(kiln::LoadMnist("data/mnist", kiln::MnistSplit::kTest));

  kiln::Trainer trainer(train.get(), eval.get());
  Check(trainer.Initialize(/*seed=*/1));
  kiln::TrainConfig config;
  config.epochs = 5;
  kiln::TrainStats stats = Check(trainer.Train(data, config));
  kiln::EvalResult result = Check(trainer.Evaluate(test));
  std::printf("%lld steps, test accuracy %.4f\n", static_cast<long long>(stats.steps),
              result.accuracy());
  Check(trainer.Save("softmax.safetensors"));
}
