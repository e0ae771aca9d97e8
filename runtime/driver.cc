#include "runtime/driver.h"

#include <algorithm>
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "runtime/idx.h"
#include "runtime/image.h"
#include "runtime/plot.h"
#include "runtime/schedule.h"
#include "runtime/trainer.h"
#include "runtime/weights_import.h"

ABSL_FLAG(std::string, data_dir, "data/mnist", "directory with the four MNIST IDX files");
ABSL_FLAG(int32_t, epochs, 1, "training epochs in total (0: evaluate only, e.g. with --load)");
ABSL_FLAG(bool, eval_only, false, "do not train: evaluate the initial or --load'ed parameters");
ABSL_FLAG(int64_t, max_steps, -1, "stop training after this many steps (-1: no limit)");
ABSL_FLAG(double, lr, 0.001, "learning rate (a runtime input of the step)");
ABSL_FLAG(std::string, lr_schedule, "constant",
          "constant, step:EVERY_EPOCHS:GAMMA, exp:GAMMA or cosine[:MIN_LR], optionally followed "
          "by ,warmup:STEPS");
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
ABSL_FLAG(double, target_accuracy, 0,
          "evaluate the test set after every epoch and stop once its accuracy reaches this "
          "(time to accuracy; 0: off)");
ABSL_FLAG(std::string, save, "",
          "save the trained parameters here (safetensors); empty: skip "
          "(default: <program>.safetensors)");
ABSL_FLAG(std::string, load, "", "load parameters from this checkpoint before training");
ABSL_FLAG(std::string, import, "",
          "load parameters from a safetensors file written elsewhere (e.g. PyTorch), renamed by "
          "--import_map");
ABSL_FLAG(std::string, import_map, "",
          "name map for --import: lines '<kiln name> <name in the file> [transpose]'");
ABSL_FLAG(std::string, predict, "", "PNG or JPEG image of one digit to classify");
ABSL_FLAG(bool, invert, false, "invert the --predict image (dark digit on a light background)");
ABSL_FLAG(std::string, plot, "",
          "write the loss curve to <plot>.csv and <plot>.svg; empty: skip "
          "(default: <program>_loss)");
ABSL_FLAG(bool, progress, true, "show a progress bar (plain lines when not a terminal)");

namespace kiln {
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

absl::Status WritePlots(const std::string& name, const TrainConfig& config,
                        const TrainStats& stats) {
  const std::string plot = absl::GetFlag(FLAGS_plot);
  if (plot.empty()) return absl::OkStatus();
  if (!stats.logged.empty()) {
    Curve curve;
    for (size_t i = 0; i < stats.logged.size(); ++i) {
      curve.push_back({static_cast<double>(i), stats.logged[i].loss});
    }
    KILN_RETURN_IF_ERROR(WriteCurveCsv(plot + ".csv", "index", "loss", curve));
    KILN_RETURN_IF_ERROR(WriteCurveSvg(
        plot + ".svg", absl::StrCat(name, ": train loss every ", config.log_every, " batches"),
        "log point", "loss", curve));
    std::printf("wrote loss curve to %s.csv and %s.svg\n", plot.c_str(), plot.c_str());
  }
  if (stats.epochs.empty()) return absl::OkStatus();
  const std::string base = plot + "_epochs";
  std::string csv = "epoch,train_loss,train_accuracy,val_loss,val_accuracy,lr\n";
  Curve train_acc, val_acc;
  for (const EpochReport& r : stats.epochs) {
    absl::StrAppend(&csv, r.epoch + 1, ",", r.mean_loss, ",", r.train_accuracy, ",", r.val_loss,
                    ",", r.val_accuracy, ",", r.lr, "\n");
    if (r.train_accuracy >= 0) train_acc.push_back({r.epoch + 1.0, r.train_accuracy});
    if (r.val_accuracy >= 0) val_acc.push_back({r.epoch + 1.0, r.val_accuracy});
  }
  std::FILE* f = std::fopen((base + ".csv").c_str(), "w");
  if (f == nullptr) return absl::NotFoundError(base + ".csv: cannot open for writing");
  std::fputs(csv.c_str(), f);
  std::fclose(f);
  std::vector<std::pair<std::string, Curve>> series;
  if (!train_acc.empty()) series.push_back({"train accuracy", train_acc});
  if (!val_acc.empty()) series.push_back({"validation accuracy", val_acc});
  if (!series.empty()) {
    KILN_RETURN_IF_ERROR(
        WriteCurvesSvg(base + ".svg", name + ": accuracy per epoch", "epoch", "accuracy", series));
  }
  std::printf("wrote per-epoch curves to %s.csv%s\n", base.c_str(),
              series.empty() ? "" : (" and " + base + ".svg").c_str());
  return absl::OkStatus();
}

}  // namespace

int DriverFail(const absl::Status& s) {
  std::fprintf(stderr, "error: %s\n", std::string(s.ToString()).c_str());
  return 1;
}

void SetDriverDefaults(const DriverDefaults& d) {
  absl::SetFlag(&FLAGS_epochs, d.epochs);
  absl::SetFlag(&FLAGS_lr, d.lr);
  absl::SetFlag(&FLAGS_lr_schedule, d.lr_schedule);
  absl::SetFlag(&FLAGS_random_shift, d.random_shift);
  absl::SetFlag(&FLAGS_log_every, d.log_every);
  absl::SetFlag(&FLAGS_save, d.name + ".safetensors");
  absl::SetFlag(&FLAGS_plot, d.name + "_loss");
  absl::SetFlag(&FLAGS_predict, d.predict);
}

void ParseDriverCommandLine(int argc, char** argv, const std::string& usage,
                            const std::vector<std::string>& flag_files) {
  static std::vector<std::string> files;
  files = flag_files;
  files.push_back("runtime/driver");
  absl::FlagsUsageConfig config;
  config.contains_help_flags = [](absl::string_view file) {
    for (const std::string& f : files) {
      if (absl::StrContains(file, f)) return true;
    }
    return false;
  };
  absl::SetFlagsUsageConfig(config);
  absl::SetProgramUsageMessage(usage);
  absl::ParseCommandLine(argc, argv);
}

absl::StatusOr<DriverData> LoadDriverData() {
  const std::string dir = absl::GetFlag(FLAGS_data_dir);
  KILN_ASSIGN_OR_RETURN(MnistData mnist, LoadMnistTrainAndTest(dir));
  DriverData d;
  d.train = std::move(mnist.train);
  d.test = std::move(mnist.test);
  std::printf("MNIST: %lld training and %lld test images from %s\n",
              static_cast<long long>(d.train.count), static_cast<long long>(d.test.count),
              dir.c_str());
  ShowSample(d.train);
  const int64_t holdout = absl::GetFlag(FLAGS_validation);
  if (holdout < 0 || holdout >= d.train.count) {
    return absl::InvalidArgumentError(
        absl::StrCat("--validation must be in [0, ", d.train.count, "), got ", holdout));
  }
  if (holdout > 0) {
    Dataset& train = d.train;
    const int64_t keep = train.count - holdout, n = train.example_size();
    d.validation.count = holdout;
    d.validation.example_shape = train.example_shape;
    d.validation.pixels.assign(train.pixels.begin() + keep * n, train.pixels.end());
    d.validation.labels.assign(train.labels.begin() + keep, train.labels.end());
    train.count = keep;
    train.pixels.resize(static_cast<size_t>(keep * n));
    train.labels.resize(static_cast<size_t>(keep));
    std::printf("validation: the last %lld training images are held out\n",
                static_cast<long long>(holdout));
  }
  return d;
}

int RunDriver(const DriverInfo& info, DriverData& data, Executable* train, Executable* eval) {
  Trainer trainer(train, eval);
  const uint64_t seed = absl::GetFlag(FLAGS_seed);
  if (absl::Status s = trainer.Initialize(seed); !s.ok()) return DriverFail(s);
  if (!absl::GetFlag(FLAGS_load).empty()) {
    absl::Status s = trainer.Load(absl::GetFlag(FLAGS_load), /*restore_counters=*/false);
    if (!s.ok()) return DriverFail(s);
    std::printf("loaded parameters from %s\n", absl::GetFlag(FLAGS_load).c_str());
  }
  if (!absl::GetFlag(FLAGS_import).empty()) {
    const std::string file = absl::GetFlag(FLAGS_import);
    if (absl::GetFlag(FLAGS_import_map).empty()) {
      return DriverFail(absl::InvalidArgumentError("--import needs --import_map"));
    }
    auto map = ParseNameMapFile(absl::GetFlag(FLAGS_import_map));
    if (!map.ok()) return DriverFail(map.status());
    auto weights = ImportSafetensors(file, *map);
    if (!weights.ok()) return DriverFail(weights.status());
    if (absl::Status s = trainer.LoadFrom(*weights, file); !s.ok()) return DriverFail(s);
    std::printf("imported %zu parameters from %s\n", weights->tensors.size(), file.c_str());
  }
  const std::string resume = absl::GetFlag(FLAGS_resume);
  if (!resume.empty()) {
    if (absl::Status s = trainer.Load(resume); !s.ok()) return DriverFail(s);
    std::printf("resumed from %s at epoch %d, step %lld\n", resume.c_str(), trainer.epoch(),
                static_cast<long long>(trainer.step()));
  }
  TrainConfig config;
  const int total_epochs = absl::GetFlag(FLAGS_epochs);
  config.epochs = absl::GetFlag(FLAGS_eval_only) ? 0 : std::max(0, total_epochs - trainer.epoch());
  config.max_steps = absl::GetFlag(FLAGS_max_steps);
  config.log_every = absl::GetFlag(FLAGS_log_every);
  config.hyper["lr"] = absl::GetFlag(FLAGS_lr);
  config.progress = absl::GetFlag(FLAGS_progress);
  config.random_shift = absl::GetFlag(FLAGS_random_shift);
  if (train != nullptr && train->signature().resident_batch > 0 && config.random_shift > 0) {
    std::printf(
        "note: --random_shift=%d is CPU-only; the resident training set is used as loaded\n",
        config.random_shift);
    config.random_shift = 0;
  }
  const int64_t batch = std::max<int64_t>(1, info.batch);
  absl::StatusOr<LrSchedule> schedule =
      ParseLrSchedule(absl::GetFlag(FLAGS_lr_schedule), absl::GetFlag(FLAGS_lr),
                      static_cast<int64_t>(total_epochs) * (data.train.count / batch));
  if (!schedule.ok()) return DriverFail(schedule.status());
  if (schedule->kind != LrSchedule::Kind::kConstant || schedule->warmup_steps > 0) {
    config.schedule = *schedule;
  }
  if (data.validation.count > 0) config.validation = &data.validation;
  const std::string checkpoint = absl::GetFlag(FLAGS_checkpoint);
  double trained_s = 0;  // training time so far (--target_accuracy)
  config.on_epoch = [&](const EpochReport& r) -> absl::Status {
    std::printf("epoch %d: train loss %.6f", r.epoch + 1, r.mean_loss);
    if (r.train_accuracy >= 0) std::printf(", train accuracy %.4f", r.train_accuracy);
    if (r.val_accuracy >= 0) std::printf(", validation accuracy %.4f", r.val_accuracy);
    if (r.val_loss >= 0) std::printf(", validation loss %.6f", r.val_loss);
    std::printf(", lr %.3g, %.3f s\n", r.lr, r.seconds);
    std::fflush(stdout);
    if (const double target = absl::GetFlag(FLAGS_target_accuracy); target > 0) {
      trained_s += r.seconds;
      absl::StatusOr<EvalResult> e = trainer.Evaluate(data.test);
      if (!e.ok()) return e.status();
      std::printf("epoch %d: test accuracy %.4f\n", r.epoch + 1, e->accuracy());
      if (e->accuracy() >= target) {
        std::printf("TARGET test accuracy %.4f >= %.4f after %d epochs, %.3f s of training\n",
                    e->accuracy(), target, r.epoch + 1, trained_s);
        if (!checkpoint.empty()) {
          KILN_RETURN_IF_ERROR(trainer.Save(checkpoint, {{"example", info.name}}));
        }
        return absl::CancelledError("target accuracy reached");
      }
    }
    if (checkpoint.empty()) return absl::OkStatus();
    return trainer.Save(checkpoint, {{"example", info.name}});
  };
  std::printf("optimizer %s, lr schedule %s\n", info.optimizer.c_str(),
              schedule->ToString().c_str());
  TrainStats stats;
  if (config.epochs > 0) {
    absl::StatusOr<TrainStats> st = trainer.Train(data.train, config);
    if (!st.ok()) return DriverFail(st.status());
    stats = *st;
    std::printf("trained %lld steps, %.0f images/s\n", static_cast<long long>(stats.steps),
                stats.images_per_second());
    if (stats.best_epoch >= 0) {
      std::printf("best validation epoch: %d (the reported test accuracy is the final model's)\n",
                  stats.best_epoch + 1);
    }
  }
  if (!absl::GetFlag(FLAGS_save).empty()) {
    absl::Status s = trainer.Save(absl::GetFlag(FLAGS_save), {{"example", info.name}});
    if (!s.ok()) return DriverFail(s);
    std::printf("saved parameters to %s\n", absl::GetFlag(FLAGS_save).c_str());
  }
  if (absl::Status s = WritePlots(info.name, config, stats); !s.ok()) return DriverFail(s);
  if (!absl::GetFlag(FLAGS_predict).empty()) {
    absl::StatusOr<std::vector<float>> x =
        LoadDigitImage(absl::GetFlag(FLAGS_predict), static_cast<int>(data.train.example_shape[1]),
                       static_cast<int>(data.train.example_shape[0]), absl::GetFlag(FLAGS_invert));
    if (!x.ok()) return DriverFail(x.status());
    absl::StatusOr<int32_t> p = trainer.Predict(*x);
    if (!p.ok()) return DriverFail(p.status());
    std::printf("prediction for %s: %d\n", absl::GetFlag(FLAGS_predict).c_str(), *p);
  }
  absl::StatusOr<EvalResult> result = trainer.Evaluate(data.test);
  if (!result.ok()) return DriverFail(result.status());
  PrintConfusion(*result);
  std::printf("test accuracy: %lld / %lld = %.4f (%.0f images/s)\n",
              static_cast<long long>(result->correct), static_cast<long long>(result->count),
              result->accuracy(), result->count / std::max(1e-9, result->seconds));
  std::printf(
      "RESULT example=%s epochs=%d test_accuracy=%.4f train_images_per_s=%.0f compile_s=%.2f "
      "train_s=%.3f eval_images_per_s=%.0f\n",
      info.name.c_str(), config.epochs, result->accuracy(), stats.images_per_second(),
      info.compile_s, stats.seconds, result->count / std::max(1e-9, result->seconds));
  const double min_acc = absl::GetFlag(FLAGS_min_accuracy);
  if (result->accuracy() < min_acc) {
    std::fprintf(stderr, "error: test accuracy %.4f is below --min_accuracy %.4f\n",
                 result->accuracy(), min_acc);
    return 1;
  }
  return 0;
}

}  // namespace kiln
