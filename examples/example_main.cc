#include "examples/example_main.h"

#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "runtime/idx.h"
#include "runtime/image.h"
#include "runtime/plot.h"
#include "runtime/trainer.h"

ABSL_FLAG(std::string, data_dir, "data/mnist", "directory with the four MNIST IDX files");
ABSL_FLAG(int32_t, epochs, 1, "training epochs (0: evaluate only, e.g. with --load)");
ABSL_FLAG(int64_t, batch_size, 16, "training batch size (compiled into the step)");
ABSL_FLAG(int64_t, eval_batch_size, 1000, "evaluation batch size (the last batch is padded)");
ABSL_FLAG(double, lr, 0.001, "learning rate (a runtime input of the step)");
ABSL_FLAG(uint64_t, seed, 1, "seed for initialization and shuffling");
ABSL_FLAG(int64_t, log_every, 1000, "print the loss every N batches");
ABSL_FLAG(double, min_accuracy, 0, "exit with status 1 if the test accuracy is below this");
ABSL_FLAG(std::string, save, "",
          "save the trained parameters here (safetensors); empty: skip "
          "(default: <example>.safetensors)");
ABSL_FLAG(std::string, load, "", "load parameters from this checkpoint before training");
ABSL_FLAG(std::string, predict, "", "PNG or JPEG image of one digit to classify");
ABSL_FLAG(bool, invert, false, "invert the --predict image (dark digit on a light background)");
ABSL_FLAG(std::string, plot, "",
          "write the loss curve to <plot>.csv and <plot>.svg; empty: skip "
          "(default: <example>_loss)");
ABSL_FLAG(std::string, dot, "",
          "write the forward and training graphs as Graphviz DOT to "
          "<dot>_forward.dot and <dot>_train.dot");
ABSL_FLAG(std::string, stmt, "", "write the training step's Halide loop nest (text) to this file");
ABSL_FLAG(bool, dump_graph, false, "print the training graph after each compiler pass");
ABSL_FLAG(bool, progress, true, "show a progress bar (plain lines when not a terminal)");

namespace kiln::examples {
namespace {

void ShowSample(const Dataset& d) {
  std::printf("first training image (label %d), %lldx%lld:\n", d.labels[0],
              static_cast<long long>(d.example_shape[0]),
              static_cast<long long>(d.example_shape[1]));
  const char* ramp = " .:-=+*#%@";
  for (int64_t y = 0; y < d.example_shape[0]; ++y) {
    std::string line;
    for (int64_t x = 0; x < d.example_shape[1]; ++x) {
      line += ramp[d.pixels[y * d.example_shape[1] + x] * 9 / 255];
    }
    std::printf("  %s\n", line.c_str());
  }
}

void PrintConfusion(const EvalResult& r) {
  std::printf("confusion matrix (rows: true label, columns: prediction):\n     ");
  for (size_t c = 0; c < r.confusion.size(); ++c) std::printf("%6zu", c);
  std::printf("\n");
  for (size_t t = 0; t < r.confusion.size(); ++t) {
    std::printf("  %zu: ", t);
    for (int64_t v : r.confusion[t]) std::printf("%6lld", static_cast<long long>(v));
    std::printf("\n");
  }
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "error: %s\n", std::string(s.ToString()).c_str());
  return 1;
}

}  // namespace

int RunExample(int argc, char** argv, const Example& e) {
  absl::SetFlag(&FLAGS_epochs, e.epochs);
  absl::SetFlag(&FLAGS_batch_size, e.batch_size);
  absl::SetFlag(&FLAGS_lr, e.lr);
  absl::SetFlag(&FLAGS_log_every, e.log_every);
  absl::SetFlag(&FLAGS_save, e.name + ".safetensors");
  absl::SetFlag(&FLAGS_plot, e.name + "_loss");
  absl::SetFlag(&FLAGS_predict, e.predict);
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::StrContains(file, "example_main");
  };
  absl::SetFlagsUsageConfig(usage);
  absl::SetProgramUsageMessage(absl::StrCat(e.description, "\nUsage: ", e.name, " [flags]"));
  absl::ParseCommandLine(argc, argv);

  const std::string dir = absl::GetFlag(FLAGS_data_dir);
  absl::StatusOr<Dataset> train = LoadMnist(dir, MnistSplit::kTrain);
  if (!train.ok()) return Fail(train.status());
  absl::StatusOr<Dataset> test = LoadMnist(dir, MnistSplit::kTest);
  if (!test.ok()) return Fail(test.status());
  std::printf("MNIST: %lld training and %lld test images from %s\n",
              static_cast<long long>(train->count), static_cast<long long>(test->count),
              dir.c_str());
  ShowSample(*train);

  const int64_t batch = absl::GetFlag(FLAGS_batch_size);
  const int64_t eval_batch = absl::GetFlag(FLAGS_eval_batch_size);
  if (batch <= 0 || eval_batch <= 0) {
    return Fail(absl::InvalidArgumentError("--batch_size and --eval_batch_size must be positive"));
  }
  CompileOptions options;
  options.dump_graphs = absl::GetFlag(FLAGS_dump_graph);
  options.stmt_path = absl::GetFlag(FLAGS_stmt);
  std::unique_ptr<Optimizer> optimizer = e.optimizer(absl::GetFlag(FLAGS_lr));
  Graph train_graph, eval_graph;
  ModelDef model = e.build(train_graph, batch);
  const std::string dot = absl::GetFlag(FLAGS_dot);
  if (!dot.empty()) {
    std::vector<int> roots = {model.loss.id()};
    for (const auto& [name, v] : model.metrics) roots.push_back(v.id());
    if (!train_graph.status().ok()) return Fail(train_graph.status());
    std::FILE* f = std::fopen((dot + "_forward.dot").c_str(), "w");
    if (f == nullptr) return Fail(absl::NotFoundError(dot + "_forward.dot: cannot open"));
    std::fputs(train_graph.ToDot(roots).c_str(), f);
    std::fclose(f);
    options.dot_path = dot + "_train.dot";
  }
  absl::StatusOr<std::unique_ptr<Executable>> train_step =
      CompileTrainStep(train_graph, model, *optimizer, options);
  if (!train_step.ok()) return Fail(train_step.status());
  options.dot_path.clear();
  options.stmt_path.clear();
  absl::StatusOr<std::unique_ptr<Executable>> eval_step =
      CompileEvalStep(eval_graph, e.build(eval_graph, eval_batch), options);
  if (!eval_step.ok()) return Fail(eval_step.status());
  double compile_s = (*train_step)->compile_seconds();
  std::printf(
      "compiled: training step (batch %lld) in %.2f s, evaluation step (batch %lld) in %.2f s\n",
      static_cast<long long>(batch), compile_s, static_cast<long long>(eval_batch),
      (*eval_step)->compile_seconds());

  Trainer trainer(train_step->get(), eval_step->get());
  const uint64_t seed = absl::GetFlag(FLAGS_seed);
  if (absl::Status s = trainer.Initialize(seed); !s.ok()) return Fail(s);
  if (!absl::GetFlag(FLAGS_load).empty()) {
    if (absl::Status s = trainer.Load(absl::GetFlag(FLAGS_load)); !s.ok()) return Fail(s);
    std::printf("loaded parameters from %s\n", absl::GetFlag(FLAGS_load).c_str());
  }

  TrainConfig config;
  config.epochs = absl::GetFlag(FLAGS_epochs);
  config.log_every = absl::GetFlag(FLAGS_log_every);
  config.hyper["lr"] = absl::GetFlag(FLAGS_lr);
  config.progress = absl::GetFlag(FLAGS_progress);
  TrainStats stats;
  if (config.epochs > 0) {
    absl::StatusOr<TrainStats> st = trainer.Train(*train, config);
    if (!st.ok()) return Fail(st.status());
    stats = *st;
    for (const EpochReport& r : stats.epochs) {
      std::printf("epoch %d: mean loss %.6f\n", r.epoch, r.mean_loss);
    }
    std::printf("trained %lld steps, %.0f images/s\n", static_cast<long long>(stats.steps),
                stats.images_per_second());
  }
  if (!absl::GetFlag(FLAGS_save).empty()) {
    absl::Status s = trainer.Save(absl::GetFlag(FLAGS_save),
                                  {{"example", e.name}, {"epochs", absl::StrCat(config.epochs)}});
    if (!s.ok()) return Fail(s);
    std::printf("saved parameters to %s\n", absl::GetFlag(FLAGS_save).c_str());
  }
  if (!absl::GetFlag(FLAGS_plot).empty() && !stats.logged.empty()) {
    Curve curve;
    for (size_t i = 0; i < stats.logged.size(); ++i)
      curve.push_back({static_cast<double>(i), stats.logged[i].loss});
    const std::string base = absl::GetFlag(FLAGS_plot);
    absl::Status s = WriteCurveCsv(base + ".csv", "index", "loss", curve);
    if (s.ok()) {
      s = WriteCurveSvg(base + ".svg",
                        absl::StrCat(e.name, ": train loss every ", config.log_every, " batches"),
                        "log point", "loss", curve);
    }
    if (!s.ok()) return Fail(s);
    std::printf("wrote loss curve to %s.csv and %s.svg\n", base.c_str(), base.c_str());
  }
  if (!absl::GetFlag(FLAGS_predict).empty()) {
    absl::StatusOr<std::vector<float>> x =
        LoadDigitImage(absl::GetFlag(FLAGS_predict), static_cast<int>(train->example_shape[1]),
                       static_cast<int>(train->example_shape[0]), absl::GetFlag(FLAGS_invert));
    if (!x.ok()) return Fail(x.status());
    absl::StatusOr<int32_t> p = trainer.Predict(*x);
    if (!p.ok()) return Fail(p.status());
    std::printf("prediction for %s: %d\n", absl::GetFlag(FLAGS_predict).c_str(), *p);
  }
  absl::StatusOr<EvalResult> eval = trainer.Evaluate(*test);
  if (!eval.ok()) return Fail(eval.status());
  PrintConfusion(*eval);
  std::printf("test accuracy: %lld / %lld = %.4f (%.0f images/s)\n",
              static_cast<long long>(eval->correct), static_cast<long long>(eval->count),
              eval->accuracy(), eval->count / std::max(1e-9, eval->seconds));
  std::printf(
      "RESULT example=%s epochs=%d test_accuracy=%.4f train_images_per_s=%.0f compile_s=%.2f\n",
      e.name.c_str(), config.epochs, eval->accuracy(), stats.images_per_second(), compile_s);
  const double min_acc = absl::GetFlag(FLAGS_min_accuracy);
  if (eval->accuracy() < min_acc) {
    std::fprintf(stderr, "error: test accuracy %.4f is below --min_accuracy %.4f\n",
                 eval->accuracy(), min_acc);
    return 1;
  }
  return 0;
}

}  // namespace kiln::examples
