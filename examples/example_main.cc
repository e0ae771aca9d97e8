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
#include "compiler/cache.h"
#include "runtime/idx.h"
#include "runtime/image.h"
#include "runtime/plot.h"
#include "runtime/schedule.h"
#include "runtime/trainer.h"

ABSL_FLAG(std::string, data_dir, "data/mnist", "directory with the four MNIST IDX files");
ABSL_FLAG(int32_t, epochs, 1, "training epochs in total (0: evaluate only, e.g. with --load)");
ABSL_FLAG(int64_t, batch_size, 16, "training batch size (compiled into the step)");
ABSL_FLAG(int64_t, eval_batch_size, 1000, "evaluation batch size (the last batch is padded)");
ABSL_FLAG(double, lr, 0.001, "learning rate (a runtime input of the step)");
ABSL_FLAG(std::string, optimizer, "sgd",
          "sgd, momentum, nesterov, adagrad, rmsprop, adam or adamw");
ABSL_FLAG(std::string, lr_schedule, "constant",
          "constant, step:EVERY_EPOCHS:GAMMA, exp:GAMMA or cosine[:MIN_LR], optionally followed "
          "by ,warmup:STEPS");
ABSL_FLAG(double, weight_decay, 0, "L2 weight decay (decoupled for adamw), biases exempt");
ABSL_FLAG(double, clip_norm, 0, "clip gradients to this global norm (0: off)");
ABSL_FLAG(
    int32_t, random_shift, 0,
    "augmentation: shift training images by up to N pixels (deterministic per seed and epoch)");
ABSL_FLAG(int64_t, validation, 0,
          "hold out the last N training images, evaluate them every epoch and report the best "
          "epoch (the test set is never used to choose)");
ABSL_FLAG(std::string, checkpoint, "",
          "save the full training state (parameters, optimizer state, counters) here after "
          "every epoch");
ABSL_FLAG(std::string, resume, "",
          "resume from a --checkpoint file and train until --epochs epochs in total");
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
ABSL_FLAG(std::string, cache_dir, "auto",
          "compile cache directory ('auto': $KILN_CACHE_DIR if set, else ~/.cache/kiln; empty: "
          "compile in memory on every run)");
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
  absl::SetFlag(&FLAGS_optimizer, e.optimizer);
  absl::SetFlag(&FLAGS_lr_schedule, e.lr_schedule);
  absl::SetFlag(&FLAGS_random_shift, e.random_shift);
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
  absl::StatusOr<MnistData> mnist = LoadMnistTrainAndTest(dir);
  if (!mnist.ok()) return Fail(mnist.status());
  Dataset* train = &mnist->train;
  const Dataset* test = &mnist->test;
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
  options.cache_dir = absl::GetFlag(FLAGS_cache_dir);
  if (options.cache_dir == "auto") options.cache_dir = DefaultCacheDir();
  absl::StatusOr<std::unique_ptr<Optimizer>> made =
      MakeOptimizer(absl::GetFlag(FLAGS_optimizer), absl::GetFlag(FLAGS_lr));
  if (!made.ok()) return Fail(made.status());
  std::unique_ptr<Optimizer> optimizer = std::move(*made);
  if (absl::GetFlag(FLAGS_weight_decay) > 0) {
    optimizer->WithWeightDecay(absl::GetFlag(FLAGS_weight_decay))
        .WithDecayFilter(DecayAllButBiases);
  }
  optimizer->WithClipGlobalNorm(absl::GetFlag(FLAGS_clip_norm));
  const int64_t holdout = absl::GetFlag(FLAGS_validation);
  if (holdout < 0 || holdout >= train->count) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--validation must be in [0, ", train->count, "), got ", holdout)));
  }
  Dataset validation;
  if (holdout > 0) {
    const int64_t keep = train->count - holdout, n = train->example_size();
    validation.count = holdout;
    validation.example_shape = train->example_shape;
    validation.pixels.assign(train->pixels.begin() + keep * n, train->pixels.end());
    validation.labels.assign(train->labels.begin() + keep, train->labels.end());
    train->count = keep;
    train->pixels.resize(static_cast<size_t>(keep * n));
    train->labels.resize(static_cast<size_t>(keep));
    std::printf("validation: the last %lld training images are held out\n",
                static_cast<long long>(holdout));
  }
  Graph train_graph(Mode::kTrain), eval_graph(Mode::kEval);
  ModelDef model = e.build(train_graph, batch);
  std::printf("%s", train_graph.Summary().c_str());
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
  const double compile_s = (*train_step)->compile_seconds();  // 0 when loaded from the cache
  auto how = [](const Executable& x) {
    return x.compile_seconds() > 0 ? absl::StrFormat("compiled in %.2f s", x.compile_seconds())
                                   : std::string("loaded from the compile cache");
  };
  std::printf("training step (batch %lld) %s, evaluation step (batch %lld) %s\n",
              static_cast<long long>(batch), how(**train_step).c_str(),
              static_cast<long long>(eval_batch), how(**eval_step).c_str());

  Trainer trainer(train_step->get(), eval_step->get());
  const uint64_t seed = absl::GetFlag(FLAGS_seed);
  if (absl::Status s = trainer.Initialize(seed); !s.ok()) return Fail(s);
  if (!absl::GetFlag(FLAGS_load).empty()) {
    absl::Status s = trainer.Load(absl::GetFlag(FLAGS_load), /*restore_counters=*/false);
    if (!s.ok()) return Fail(s);
    std::printf("loaded parameters from %s\n", absl::GetFlag(FLAGS_load).c_str());
  }

  const std::string resume = absl::GetFlag(FLAGS_resume);
  if (!resume.empty()) {
    if (absl::Status s = trainer.Load(resume); !s.ok()) return Fail(s);
    std::printf("resumed from %s at epoch %d, step %lld\n", resume.c_str(), trainer.epoch(),
                static_cast<long long>(trainer.step()));
  }
  TrainConfig config;
  const int total_epochs = absl::GetFlag(FLAGS_epochs);
  config.epochs = std::max(0, total_epochs - trainer.epoch());
  config.log_every = absl::GetFlag(FLAGS_log_every);
  config.hyper["lr"] = absl::GetFlag(FLAGS_lr);
  config.progress = absl::GetFlag(FLAGS_progress);
  config.random_shift = absl::GetFlag(FLAGS_random_shift);
  absl::StatusOr<LrSchedule> schedule =
      ParseLrSchedule(absl::GetFlag(FLAGS_lr_schedule), absl::GetFlag(FLAGS_lr),
                      static_cast<int64_t>(total_epochs) * (train->count / batch));
  if (!schedule.ok()) return Fail(schedule.status());
  if (schedule->kind != LrSchedule::Kind::kConstant || schedule->warmup_steps > 0) {
    config.schedule = *schedule;
  }
  if (holdout > 0) config.validation = &validation;
  const std::string checkpoint = absl::GetFlag(FLAGS_checkpoint);
  config.on_epoch = [&](const EpochReport& r) -> absl::Status {
    std::printf("epoch %d: train loss %.6f", r.epoch + 1, r.mean_loss);
    if (r.train_accuracy >= 0) std::printf(", train accuracy %.4f", r.train_accuracy);
    if (r.val_accuracy >= 0) std::printf(", validation accuracy %.4f", r.val_accuracy);
    if (r.val_loss >= 0) std::printf(", validation loss %.6f", r.val_loss);
    std::printf(", lr %.3g, %.1f s\n", r.lr, r.seconds);
    std::fflush(stdout);
    if (checkpoint.empty()) return absl::OkStatus();
    return trainer.Save(checkpoint, {{"example", e.name}});
  };
  std::printf("optimizer %s, lr schedule %s\n", optimizer->name().c_str(),
              schedule->ToString().c_str());
  TrainStats stats;
  if (config.epochs > 0) {
    absl::StatusOr<TrainStats> st = trainer.Train(*train, config);
    if (!st.ok()) return Fail(st.status());
    stats = *st;
    std::printf("trained %lld steps, %.0f images/s\n", static_cast<long long>(stats.steps),
                stats.images_per_second());
    if (stats.best_epoch >= 0) {
      std::printf("best validation epoch: %d (the reported test accuracy is the final model's)\n",
                  stats.best_epoch + 1);
    }
  }
  if (!absl::GetFlag(FLAGS_save).empty()) {
    absl::Status s = trainer.Save(absl::GetFlag(FLAGS_save), {{"example", e.name}});
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
  if (!absl::GetFlag(FLAGS_plot).empty() && !stats.epochs.empty()) {
    const std::string base = absl::GetFlag(FLAGS_plot) + "_epochs";
    std::string csv = "epoch,train_loss,train_accuracy,val_loss,val_accuracy,lr\n";
    Curve train_acc, val_acc;
    for (const EpochReport& r : stats.epochs) {
      absl::StrAppend(&csv, r.epoch + 1, ",", r.mean_loss, ",", r.train_accuracy, ",", r.val_loss,
                      ",", r.val_accuracy, ",", r.lr, "\n");
      if (r.train_accuracy >= 0) train_acc.push_back({r.epoch + 1.0, r.train_accuracy});
      if (r.val_accuracy >= 0) val_acc.push_back({r.epoch + 1.0, r.val_accuracy});
    }
    std::FILE* f = std::fopen((base + ".csv").c_str(), "w");
    if (f == nullptr) return Fail(absl::NotFoundError(base + ".csv: cannot open for writing"));
    std::fputs(csv.c_str(), f);
    std::fclose(f);
    std::vector<std::pair<std::string, Curve>> series;
    if (!train_acc.empty()) series.push_back({"train accuracy", train_acc});
    if (!val_acc.empty()) series.push_back({"validation accuracy", val_acc});
    if (!series.empty()) {
      absl::Status s = WriteCurvesSvg(base + ".svg", e.name + ": accuracy per epoch", "epoch",
                                      "accuracy", series);
      if (!s.ok()) return Fail(s);
    }
    std::printf("wrote per-epoch curves to %s.csv%s\n", base.c_str(),
                series.empty() ? "" : (" and " + base + ".svg").c_str());
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
