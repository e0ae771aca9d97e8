// Kiln side of bench/run.sh: for each model, JIT compile time of the training step, steady-state
// training images/s (median of timed epochs after a 200-step warm-up) and evaluation images/s on
// the 10,000 test images. One JSON line per model. Timings are reported, never asserted.
//
//   kiln_bench --data_dir=data/mnist --epochs=3 [--models=linear,softmax,mlp]
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_split.h"
#include "compiler/model.h"
#include "examples/models.h"
#include "runtime/idx.h"
#include "runtime/trainer.h"

ABSL_FLAG(std::string, data_dir, "data/mnist", "MNIST directory");
ABSL_FLAG(int32_t, epochs, 3, "timed epochs per model (the median is reported)");
ABSL_FLAG(std::string, models, "linear,softmax,mlp,cnn,lenet5", "models to run");

namespace kiln {
namespace {

struct Bench {
  std::string name;
  ModelDef (*build)(Graph&, int64_t);
  int64_t batch;
  double lr;
};

int Run(const Bench& b, const Dataset& train, const Dataset& test, int epochs) {
  Graph tg, eg(Mode::kEval);
  auto step = CompileTrainStep(tg, b.build(tg, b.batch), Sgd(b.lr), {});
  auto eval = CompileEvalStep(eg, b.build(eg, 1000), {});
  if (!step.ok() || !eval.ok()) {
    std::fprintf(stderr, "%s: %s\n", b.name.c_str(),
                 std::string((step.ok() ? eval.status() : step.status()).message()).c_str());
    return 1;
  }
  Trainer t(step->get(), eval->get());
  if (!t.Initialize(1).ok()) return 1;
  TrainConfig warm = TrainConfig::Silent(1);
  warm.max_steps = 200;
  if (!t.Train(train, warm).ok()) return 1;
  std::vector<double> rates;
  for (int e = 0; e < epochs; ++e) {
    TrainConfig c = warm;
    c.max_steps = -1;
    auto s = t.Train(train, c);
    if (!s.ok()) return 1;
    rates.push_back(s->images_per_second());
  }
  std::sort(rates.begin(), rates.end());
  auto r = t.Evaluate(test);
  if (!r.ok()) return 1;
  std::printf(
      "{\"peer\": \"kiln\", \"model\": \"%s\", \"batch\": %lld, \"train_images_per_s\": %.0f, "
      "\"eval_images_per_s\": %.0f, \"compile_s\": %.3f, \"epochs_timed\": %d, "
      "\"test_accuracy\": %.4f}\n",
      b.name.c_str(), static_cast<long long>(b.batch), rates[rates.size() / 2],
      r->count / r->seconds, (*step)->compile_seconds(), epochs, r->accuracy());
  std::fflush(stdout);
  return 0;
}

}  // namespace
}  // namespace kiln

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  using namespace kiln;
  auto mnist = LoadMnistTrainAndTest(absl::GetFlag(FLAGS_data_dir));
  if (!mnist.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(mnist.status().message()).c_str());
    return 1;
  }
  const Dataset* train = &mnist->train;
  const Dataset* test = &mnist->test;
  const std::vector<Bench> all = {{"linear", examples::MnistLinear, 16, 0.001},
                                  {"softmax", examples::MnistSoftmax, 64, 0.2},
                                  {"mlp", examples::MnistMlp, 64, 0.1},
                                  {"cnn", examples::MnistCnn, 64, 0.01},
                                  {"lenet5", examples::MnistLeNet5, 64, 0.01}};
  int rc = 0;
  for (absl::string_view want : absl::StrSplit(absl::GetFlag(FLAGS_models), ',')) {
    for (const Bench& b : all) {
      if (b.name == want) rc |= Run(b, *train, *test, absl::GetFlag(FLAGS_epochs));
    }
  }
  return rc;
}
