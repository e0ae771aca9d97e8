// The tutorial's optimizer chapter: the same model (MLP 784-128-64-10) trained with SGD, Momentum,
// Adagrad and Adam from the same initialization and data order; loss curves in one image and the
// test accuracies in a table.
//   mnist_optimizers --data_dir=data/mnist --epochs=3 --out=optimizers
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "compiler/model.h"
#include "examples/models.h"
#include "runtime/idx.h"
#include "runtime/plot.h"
#include "runtime/trainer.h"

ABSL_FLAG(std::string, data_dir, "data/mnist", "directory with the MNIST IDX files");
ABSL_FLAG(int32_t, epochs, 3, "epochs per optimizer");
ABSL_FLAG(uint64_t, seed, 1, "seed for initialization and shuffling (the same for every run)");
ABSL_FLAG(std::string, out, "mnist_optimizers", "write <out>_loss.svg, <out>_loss.csv, <out>.md");

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
  struct Run {
    const char* name;
    double lr;
  };
  const std::vector<Run> runs = {
      {"sgd", 0.1}, {"momentum", 0.02}, {"adagrad", 0.02}, {"adam", 1e-3}};
  std::vector<std::pair<std::string, Curve>> curves;
  std::string table =
      "| optimizer | lr | test accuracy | final train loss | train images/s "
      "|\n|---|---|---|---|---|\n";
  std::string csv = "optimizer,step,loss\n";
  for (const Run& r : runs) {
    auto opt = MakeOptimizer(r.name, r.lr);
    Graph tg, eg(Mode::kEval);
    auto step = CompileTrainStep(tg, examples::MnistMlp(tg, 64), **opt, {});
    auto eval = CompileEvalStep(eg, examples::MnistMlp(eg, 1000), {});
    if (!step.ok() || !eval.ok()) {
      std::fprintf(stderr, "error: %s\n",
                   std::string((step.ok() ? eval : step).status().message()).c_str());
      return 1;
    }
    Trainer t(step->get(), eval->get());
    if (!t.Initialize(absl::GetFlag(FLAGS_seed)).ok()) return 1;
    TrainConfig c = TrainConfig::Silent(absl::GetFlag(FLAGS_epochs));
    c.log_every = 100;
    std::printf("== %s (lr %g)\n", r.name, r.lr);
    auto stats = t.Train(*train, c);
    if (!stats.ok()) {
      std::fprintf(stderr, "error: %s\n", std::string(stats.status().message()).c_str());
      return 1;
    }
    auto acc = t.Evaluate(*test);
    if (!acc.ok()) return 1;
    Curve curve;
    const int64_t per_epoch = train->count / 64;
    for (const LossPoint& p : stats->logged) {
      double x = p.epoch + static_cast<double>(p.batch) / per_epoch;
      curve.push_back({x, p.loss});
      absl::StrAppend(&csv, r.name, ",", p.epoch * per_epoch + p.batch, ",", p.loss, "\n");
    }
    curves.push_back({absl::StrCat(r.name, " (lr ", r.lr, ")"), curve});
    absl::StrAppend(&table, "| ", r.name, " | ", r.lr, " | ",
                    absl::StrFormat("%.4f", acc->accuracy()), " | ",
                    absl::StrFormat("%.4f", stats->epochs.back().mean_loss), " | ",
                    absl::StrFormat("%.0f", stats->images_per_second()), " |\n");
  }
  const std::string out = absl::GetFlag(FLAGS_out);
  absl::Status s = WriteCurvesSvg(out + "_loss.svg", "MLP on MNIST: training loss by optimizer",
                                  "epoch", "loss (every 100 batches)", curves);
  if (s.ok()) {
    std::FILE* f = std::fopen((out + "_loss.csv").c_str(), "w");
    std::FILE* m = std::fopen((out + ".md").c_str(), "w");
    if (f == nullptr || m == nullptr) s = absl::NotFoundError("cannot write " + out + " files");
    if (f) std::fputs(csv.c_str(), f), std::fclose(f);
    if (m) std::fputs(table.c_str(), m), std::fclose(m);
  }
  if (!s.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  std::printf("\n%s\nwrote %s_loss.svg, %s_loss.csv, %s.md\n", table.c_str(), out.c_str(),
              out.c_str(), out.c_str());
  return 0;
}
