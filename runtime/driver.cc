#include "runtime/driver.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "base/status.h"
#include "runtime/idx.h"
#include "runtime/image.h"
#include "runtime/nccl.h"
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
          "save the trained parameters here (safetensors); empty: skip (default: "
          "<program>.safetensors). A run that trains nothing saves only when given --save");
ABSL_FLAG(std::string, load, "", "load parameters from this checkpoint before training");
ABSL_FLAG(std::string, import, "",
          "load parameters from a safetensors file written elsewhere (e.g. PyTorch), renamed by "
          "--import_map");
ABSL_FLAG(std::string, import_map, "",
          "name map for --import: lines '<kiln name> <name in the file> [transpose]'");
ABSL_FLAG(std::string, predict, "", "PNG or JPEG image of one digit to classify");
ABSL_FLAG(bool, invert, false, "invert the --predict image (dark digit on a light background)");
ABSL_FLAG(std::string, plot, "",
          "write the loss curve to <plot>.csv and <plot>.svg and the per-epoch accuracy to "
          "<plot>_epochs.csv and .svg; empty: skip (default: <program>_loss)");
ABSL_FLAG(std::string, log_json, "",
          "append every logged step and every epoch to this file as JSON lines (one object per "
          "line: {\"event\":\"step\"|\"epoch\", ...})");
ABSL_FLAG(bool, progress, true, "show a progress bar (plain lines when not a terminal)");
ABSL_FLAG(double, collective_timeout, 60,
          "data-parallel training (under mpirun): seconds a collective may take before the job "
          "ends with an error (a rank died or hangs)");

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

absl::Status WriteText(const std::string& path, const std::string& text) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return absl::NotFoundError(path + ": cannot open for writing");
  const bool ok = std::fputs(text.c_str(), f) >= 0;
  if (std::fclose(f) != 0 || !ok) return absl::InternalError(path + ": write failed");
  return absl::OkStatus();
}

// The loss against training steps, and per-epoch accuracies (train, and validation or test).
absl::Status WritePlots(const std::string& plot, const std::string& name, const TrainStats& stats,
                        const Curve& test_accuracy) {
  if (plot.empty() || stats.steps == 0) return absl::OkStatus();  // nothing trained: no curve
  if (!stats.logged.empty()) {
    Curve curve;
    for (const LossPoint& p : stats.logged) curve.push_back({static_cast<double>(p.step), p.loss});
    KILN_RETURN_IF_ERROR(WriteCurveCsv(plot + ".csv", "step", "loss", curve));
    KILN_RETURN_IF_ERROR(WriteLossSvg(plot + ".svg", name + ": training loss", curve));
    std::printf("wrote loss curve to %s.csv and %s.svg\n", plot.c_str(), plot.c_str());
  }
  if (stats.epochs.empty()) return absl::OkStatus();
  const std::string base = plot + "_epochs";
  std::string csv = "epoch,train_loss,train_accuracy,val_loss,val_accuracy,test_accuracy,lr\n";
  Curve train_acc, val_acc;
  for (const EpochReport& r : stats.epochs) {
    double test = -1;
    for (const auto& [epoch, acc] : test_accuracy) {
      if (epoch == r.epoch + 1.0) test = acc;
    }
    absl::StrAppend(&csv, r.epoch + 1, ",", r.mean_loss, ",", r.train_accuracy, ",", r.val_loss,
                    ",", r.val_accuracy, ",", test, ",", r.lr, "\n");
    if (r.train_accuracy >= 0) train_acc.push_back({r.epoch + 1.0, r.train_accuracy});
    if (r.val_accuracy >= 0) val_acc.push_back({r.epoch + 1.0, r.val_accuracy});
  }
  KILN_RETURN_IF_ERROR(WriteText(base + ".csv", csv));
  std::vector<std::pair<std::string, Curve>> series;
  if (!train_acc.empty()) series.push_back({"train", train_acc});
  if (!val_acc.empty()) series.push_back({"validation", val_acc});
  if (!test_accuracy.empty()) series.push_back({"test", test_accuracy});
  if (!series.empty()) {
    KILN_RETURN_IF_ERROR(WriteAccuracySvg(base + ".svg", name + ": accuracy per epoch", series));
  }
  std::printf("wrote per-epoch curves to %s.csv%s\n", base.c_str(),
              series.empty() ? "" : (" and " + base + ".svg").c_str());
  return absl::OkStatus();
}

// --log_json: one JSON object per line, appended and flushed as training goes.
class JsonLog {
 public:
  absl::Status Open(const std::string& path) {
    if (path.empty()) return absl::OkStatus();
    file_ = std::fopen(path.c_str(), "a");
    if (file_ == nullptr) return absl::NotFoundError(path + ": cannot open for appending");
    return absl::OkStatus();
  }
  ~JsonLog() {
    if (file_ != nullptr) std::fclose(file_);
  }
  void Step(const LossPoint& p) {
    Line(absl::StrFormat(R"({"event":"step","epoch":%d,"batch":%d,"step":%d,"loss":%s,"lr":%s})",
                         p.epoch + 1, p.batch, p.step, Number(p.loss), Number(p.lr)));
  }
  void Epoch(const EpochReport& r) {
    std::string line = absl::StrFormat(R"({"event":"epoch","epoch":%d,"train_loss":%s,"lr":%s)",
                                       r.epoch + 1, Number(r.mean_loss), Number(r.lr));
    if (r.train_accuracy >= 0)
      absl::StrAppend(&line, R"(,"train_accuracy":)", Number(r.train_accuracy));
    if (r.val_accuracy >= 0)
      absl::StrAppend(&line, R"(,"validation_accuracy":)", Number(r.val_accuracy));
    if (r.val_loss >= 0) absl::StrAppend(&line, R"(,"validation_loss":)", Number(r.val_loss));
    Line(absl::StrCat(line, R"(,"seconds":)", Number(r.seconds), "}"));
  }

 private:
  static std::string Number(double v) {
    return std::isfinite(v) ? absl::StrFormat("%.9g", v) : std::string("null");
  }
  void Line(const std::string& line) {
    if (file_ == nullptr) return;
    std::fprintf(file_, "%s\n", line.c_str());
    std::fflush(file_);
  }
  std::FILE* file_ = nullptr;
};

// SIGINT / SIGTERM while training: the first asks the loop to stop after its step (a second one
// kills the process as usual).
std::atomic<bool> g_stop{false};
volatile sig_atomic_t g_stop_signal = 0;
void OnStopSignal(int sig) {
  g_stop_signal = sig;
  g_stop.store(true);
}
class StopSignals {
 public:
  StopSignals() {
    struct sigaction sa = {};
    sa.sa_handler = OnStopSignal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~StopSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  struct sigaction old_int_, old_term_;
};

// Levenshtein distance, for "did you mean" on an unknown flag.
size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1] ? 1 : 0)});
      diag = up;
    }
  }
  return row[b.size()];
}

// The flags --help shows (the driver's and the program's own); set by ParseDriverCommandLine.
std::vector<std::string>& HelpFiles() {
  static std::vector<std::string> files;
  return files;
}
constexpr char kDriverGroup[] = "the training driver (every Kiln program)";
constexpr char kProgramGroup[] = "this program";
bool IsHelpFile(absl::string_view file) {
  if (file == kDriverGroup || file == kProgramGroup) return true;  // already normalized
  for (const std::string& f : HelpFiles()) {
    if (absl::StrContains(file, f)) return true;
  }
  return false;
}

// Refuses (exit 1) an argument that names no known flag, suggesting the nearest, or a flag the
// program fixed at build time.
void CheckFlagNames(int argc, char** argv, const std::vector<CompiledInFlag>& compiled_in) {
  static const char* kBuiltIn[] = {"help",    "helpfull",       "helpshort", "helppackage",
                                   "version", "flagfile",       "fromenv",   "tryfromenv",
                                   "undefok", "only_check_args"};
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg.size() < 2 || arg[0] != '-') {
      std::fprintf(stderr, "error: unexpected argument '%s' (flags take the form --name=value)\n",
                   argv[i]);
      std::exit(1);
    }
    arg.remove_prefix(arg[1] == '-' ? 2 : 1);
    absl::string_view name = arg.substr(0, arg.find('='));
    for (const CompiledInFlag& c : compiled_in) {
      if (name == c.name) {
        std::fprintf(stderr, "error: --%s: %s\n", c.name.c_str(), c.why.c_str());
        std::exit(1);
      }
    }
    if (std::find(std::begin(kBuiltIn), std::end(kBuiltIn), name) != std::end(kBuiltIn)) continue;
    if (absl::FindCommandLineFlag(name) != nullptr) continue;
    if (absl::StartsWith(name, "no") && absl::FindCommandLineFlag(name.substr(2)) != nullptr) {
      continue;  // --noprogress
    }
    std::string best;
    size_t best_d = std::string::npos;
    for (const auto& [flag, f] : absl::GetAllFlags()) {
      if (!IsHelpFile(f->Filename())) continue;
      const size_t d = EditDistance(name, flag);
      if (d < best_d || (d == best_d && std::string(flag) < best)) {
        best_d = d;
        best = std::string(flag);
      }
    }
    const bool close = !best.empty() &&
                       (best_d <= 2 || best_d * 3 <= name.size() || absl::StrContains(best, name));
    std::fprintf(stderr, "error: unknown flag --%s%s (--help lists the flags)\n",
                 std::string(name).c_str(),
                 close ? ("; did you mean --" + best + "?").c_str() : "");
    std::exit(1);
  }
}

// Whether argv names the flag `name` (before a "--" that ends the flags).
bool GivenOnCommandLine(int argc, char** argv, absl::string_view name) {
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") break;
    if (!absl::ConsumePrefix(&arg, "--")) absl::ConsumePrefix(&arg, "-");
    if (arg.substr(0, arg.find('=')) == name) return true;
  }
  return false;
}

// The directory `path` would be written in must exist.
absl::Status CheckOutputDir(const char* flag, const std::string& path) {
  if (path.empty()) return absl::OkStatus();
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return absl::OkStatus();
  const std::string dir = slash == 0 ? "/" : path.substr(0, slash);
  if (::access(dir.c_str(), W_OK) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, "=", path, ": the directory '", dir, "' ",
                     errno == ENOENT ? "does not exist" : "is not writable"));
  }
  return absl::OkStatus();
}

absl::Status CheckInputFile(const char* flag, const std::string& path) {
  if (path.empty()) return absl::OkStatus();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(
        absl::StrCat("--", flag, "=", path, ": cannot open: ", std::strerror(errno)));
  }
  ::close(fd);
  return absl::OkStatus();
}

absl::Status CheckRange(const char* flag, double v, double lo, double hi, bool lo_open = false) {
  if (std::isfinite(v) && (lo_open ? v > lo : v >= lo) && v <= hi) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("--", flag, " must be in ", lo_open ? "(" : "[", lo, ", ",
                   std::isinf(hi) ? std::string("inf)") : absl::StrCat(hi, "]"), ", got ", v));
}

// The run's learning-rate schedule over `total_epochs` epochs of `batch`.
absl::StatusOr<LrSchedule> Schedule(const DriverOptions& o, const Dataset& train, int64_t batch) {
  return ParseLrSchedule(
      o.lr_schedule, o.lr,
      static_cast<int64_t>(o.epochs) * (train.count / std::max<int64_t>(1, batch)));
}

}  // namespace

namespace {
std::string g_rank_prefix;  // "[rank r] " on ranks > 0 of a job
}  // namespace

int DriverFail(const absl::Status& s) {
  std::fprintf(stderr, "%serror: %s\n", g_rank_prefix.c_str(), std::string(s.ToString()).c_str());
  return 1;
}

absl::StatusOr<std::unique_ptr<Communicator>> JoinDriverJob(const DriverOptions& o) {
  if (absl::StatusOr<LaunchInfo> l = DetectLaunch(); l.ok() && l->size > 1 && l->rank > 0) {
    g_rank_prefix = absl::StrCat("[rank ", l->rank, "] ");  // also for errors in joining
  }
  JobOptions jo;
  jo.timeout_s = std::max(o.collective_timeout, 600.0);  // until the steps are compiled
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> comm, JoinJob(jo));
  if (comm->size() == 1) return comm;
  const int threads =
      ShareCores(comm->local_size(), static_cast<int>(std::thread::hardware_concurrency()));
  g_rank_prefix = RankPrefix(comm.get());
  if (comm->rank() != 0) {
    std::fflush(stdout);
    if (std::freopen("/dev/null", "w", stdout) == nullptr) {
      return absl::InternalError("cannot send this rank's output to /dev/null");
    }
  }
  std::printf("data-parallel: %d ranks over %s, %d on this machine, %d Halide thread%s each\n",
              comm->size(), comm->backend().c_str(), comm->local_size(), threads,
              threads == 1 ? "" : "s");
  return comm;
}

absl::Status CheckDriverJob(Communicator& comm, const DriverOptions& o,
                            std::vector<std::pair<std::string, std::string>> fields) {
  if (comm.size() == 1) return absl::OkStatus();
  fields.push_back({"--seed", absl::StrCat(o.seed)});
  fields.push_back({"--epochs", absl::StrCat(o.epochs)});
  fields.push_back({"--lr", absl::StrCat(o.lr)});
  fields.push_back({"--lr_schedule", o.lr_schedule});
  fields.push_back({"--random_shift", absl::StrCat(o.random_shift)});
  fields.push_back({"--validation", absl::StrCat(o.validation)});
  fields.push_back({"--max_steps", absl::StrCat(o.max_steps)});
  fields.push_back({"--eval_only", o.eval_only ? "true" : "false"});
  fields.push_back({"--resume", o.resume});
  fields.push_back({"--load", o.load});
  return CheckSameOnEveryRank(comm, fields);
}

absl::StatusOr<std::unique_ptr<Communicator>> JoinDeviceCollectives(Communicator& host) {
  if (host.size() == 1) return std::unique_ptr<Communicator>();
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<NcclCommunicator> nccl,
                        NcclCommunicator::Create(host, host.local_rank()));
  std::printf("data-parallel on GPUs: %s (each rank on the GPU of its local rank)\n",
              nccl->backend().c_str());
  return std::unique_ptr<Communicator>(std::move(nccl));
}

int FinishDriverJob(std::unique_ptr<Communicator> comm, int code) {
  if (comm != nullptr && comm->size() > 1 && code != 0) {
    std::fflush(stdout);
    std::fflush(stderr);
    _exit(code);
  }
  comm.reset();
  return code;
}

DriverOptions ParseDriverCommandLine(int argc, char** argv, const std::string& usage,
                                     const std::vector<std::string>& flag_files,
                                     const DriverDefaults& d,
                                     const std::vector<CompiledInFlag>& compiled_in) {
  absl::SetFlag(&FLAGS_epochs, d.epochs);
  absl::SetFlag(&FLAGS_lr, d.lr);
  absl::SetFlag(&FLAGS_lr_schedule, d.lr_schedule);
  absl::SetFlag(&FLAGS_random_shift, d.random_shift);
  absl::SetFlag(&FLAGS_log_every, d.log_every);
  absl::SetFlag(&FLAGS_save, d.name + ".safetensors");
  absl::SetFlag(&FLAGS_plot, d.name + "_loss");
  absl::SetFlag(&FLAGS_predict, d.predict);
  HelpFiles() = flag_files;
  HelpFiles().push_back("runtime/driver");
  absl::FlagsUsageConfig config;
  config.contains_help_flags = IsHelpFile;
  // --help names groups, not the paths the program was built from.
  config.normalize_filename = [](absl::string_view file) -> std::string {
    if (absl::StrContains(file, "runtime/driver")) return kDriverGroup;
    return IsHelpFile(file) ? kProgramGroup : std::string(file);
  };
  absl::SetFlagsUsageConfig(config);
  absl::SetProgramUsageMessage(usage);
  CheckFlagNames(argc, argv, compiled_in);
  absl::ParseCommandLine(argc, argv);

  DriverOptions o;
  o.name = d.name;
  o.data_dir = absl::GetFlag(FLAGS_data_dir);
  o.epochs = absl::GetFlag(FLAGS_epochs);
  o.eval_only = absl::GetFlag(FLAGS_eval_only);
  o.max_steps = absl::GetFlag(FLAGS_max_steps);
  o.lr = absl::GetFlag(FLAGS_lr);
  o.lr_schedule = absl::GetFlag(FLAGS_lr_schedule);
  o.random_shift = absl::GetFlag(FLAGS_random_shift);
  o.validation = absl::GetFlag(FLAGS_validation);
  o.checkpoint = absl::GetFlag(FLAGS_checkpoint);
  o.resume = absl::GetFlag(FLAGS_resume);
  o.seed = absl::GetFlag(FLAGS_seed);
  o.log_every = absl::GetFlag(FLAGS_log_every);
  o.min_accuracy = absl::GetFlag(FLAGS_min_accuracy);
  o.target_accuracy = absl::GetFlag(FLAGS_target_accuracy);
  o.save = absl::GetFlag(FLAGS_save);
  o.save_explicit = GivenOnCommandLine(argc, argv, "save");
  o.load = absl::GetFlag(FLAGS_load);
  o.import = absl::GetFlag(FLAGS_import);
  o.import_map = absl::GetFlag(FLAGS_import_map);
  o.predict = absl::GetFlag(FLAGS_predict);
  o.invert = absl::GetFlag(FLAGS_invert);
  o.plot = absl::GetFlag(FLAGS_plot);
  o.log_json = absl::GetFlag(FLAGS_log_json);
  o.progress = absl::GetFlag(FLAGS_progress);
  o.collective_timeout = absl::GetFlag(FLAGS_collective_timeout);
  return o;
}

absl::StatusOr<DriverData> LoadDriverData(const DriverOptions& o) {
  KILN_ASSIGN_OR_RETURN(MnistData mnist, LoadMnistTrainAndTest(o.data_dir));
  DriverData d;
  d.train = std::move(mnist.train);
  d.test = std::move(mnist.test);
  std::printf("MNIST: %lld training and %lld test images from %s\n",
              static_cast<long long>(d.train.count), static_cast<long long>(d.test.count),
              o.data_dir.c_str());
  ShowSample(d.train);
  const int64_t holdout = o.validation;
  if (holdout < 0 || holdout >= d.train.count) {
    return absl::InvalidArgumentError(
        absl::StrCat("--validation must be in [0, ", d.train.count - 1, "], got ", holdout));
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

absl::Status ValidateDriverOptions(const DriverOptions& o, const DriverData& data, int64_t batch) {
  auto bad = [](const std::string& m) { return absl::InvalidArgumentError(m); };
  if (o.epochs < 0) return bad(absl::StrCat("--epochs must be >= 0, got ", o.epochs));
  if (o.max_steps < -1) {
    return bad(absl::StrCat("--max_steps must be >= 1, or -1 for no limit, got ", o.max_steps));
  }
  if (o.log_every < 0)
    return bad(absl::StrCat("--log_every must be >= 0 (0: never), got ", o.log_every));
  KILN_RETURN_IF_ERROR(CheckRange("lr (the base learning rate)", o.lr, 0, INFINITY, true));
  KILN_RETURN_IF_ERROR(CheckRange("min_accuracy", o.min_accuracy, 0, 1));
  KILN_RETURN_IF_ERROR(CheckRange("target_accuracy", o.target_accuracy, 0, 1));
  if (!(o.collective_timeout > 0)) {
    return bad(
        absl::StrCat("--collective_timeout must be > 0 seconds, got ", o.collective_timeout));
  }
  if (batch < 1 || batch > data.train.count) {
    return bad(absl::StrCat("--batch_size must be in [1, ", data.train.count,
                            "] (the training examples), got ", batch));
  }
  const Shape& ex = data.train.example_shape;
  if (o.random_shift < 0) {
    return bad(absl::StrCat("--random_shift must be >= 0, got ", o.random_shift));
  }
  if (o.random_shift > 0 && ex.size() != 2) {
    return bad(absl::StrCat("--random_shift=", o.random_shift,
                            " shifts 2-D images; these examples are ", ShapeString(ex)));
  }
  if (o.random_shift > 0 && o.random_shift >= std::min(ex[0], ex[1])) {
    return bad(absl::StrCat("--random_shift must be in [0, ", std::min(ex[0], ex[1]) - 1, "] for ",
                            ShapeString(ex), " images, got ", o.random_shift));
  }
  KILN_RETURN_IF_ERROR(Schedule(o, data.train, batch).status());
  if (!o.load.empty() && !o.resume.empty()) {
    return bad("--load and --resume both given: --resume restores the parameters as well");
  }
  if (!o.import.empty() && o.import_map.empty()) return bad("--import needs --import_map");
  if (o.import.empty() && !o.import_map.empty()) return bad("--import_map needs --import");
  KILN_RETURN_IF_ERROR(CheckInputFile("load", o.load));
  KILN_RETURN_IF_ERROR(CheckInputFile("resume", o.resume));
  KILN_RETURN_IF_ERROR(CheckInputFile("import", o.import));
  KILN_RETURN_IF_ERROR(CheckInputFile("import_map", o.import_map));
  KILN_RETURN_IF_ERROR(CheckInputFile("predict", o.predict));
  KILN_RETURN_IF_ERROR(CheckOutputDir("save", o.save));
  KILN_RETURN_IF_ERROR(CheckOutputDir("checkpoint", o.checkpoint));
  KILN_RETURN_IF_ERROR(CheckOutputDir("plot", o.plot));
  KILN_RETURN_IF_ERROR(CheckOutputDir("log_json", o.log_json));
  return absl::OkStatus();
}

namespace {

// --load, --import, --resume into the trainer; whether any of them gave it parameters.
absl::StatusOr<bool> RestoreState(const DriverOptions& o, Trainer& trainer) {
  if (!o.load.empty()) {
    KILN_RETURN_IF_ERROR(trainer.Load(o.load, /*restore_counters=*/false));
    std::printf("loaded parameters from %s\n", o.load.c_str());
  }
  if (!o.import.empty()) {
    KILN_ASSIGN_OR_RETURN(std::vector<NameMapEntry> map, ParseNameMapFile(o.import_map));
    KILN_ASSIGN_OR_RETURN(SafetensorsFile weights, ImportSafetensors(o.import, map));
    KILN_RETURN_IF_ERROR(trainer.LoadFrom(weights, o.import));
    std::printf("imported %zu parameters from %s\n", weights.tensors.size(), o.import.c_str());
  }
  if (!o.resume.empty()) {
    KILN_RETURN_IF_ERROR(trainer.Load(o.resume));
    const std::string inside = trainer.batch_in_epoch() == 0
                                   ? ""
                                   : absl::StrCat(" (inside epoch ", trainer.epoch() + 1,
                                                  ", at batch ", trainer.batch_in_epoch(), ")");
    std::printf("resumed from %s at epoch %d, step %lld%s\n", o.resume.c_str(), trainer.epoch(),
                static_cast<long long>(trainer.step()), inside.c_str());
  }
  return !o.load.empty() || !o.import.empty() || !o.resume.empty();
}

// What happens after each epoch: the log line, the JSON line, the test accuracy (for the plot or
// --target_accuracy, which ends training once reached) and the --checkpoint.
class EpochEnd {
 public:
  EpochEnd(const DriverOptions& o, const DriverInfo& info, const DriverData& data, Trainer& trainer,
           JsonLog& json)
      : o_(o), info_(info), data_(data), trainer_(trainer), json_(json) {}
  // The accuracy plot's held-out line: the validation set when there is one, else the test set
  // (drawn only; the reported model is always the final one).
  bool test_curve() const { return !o_.plot.empty() && data_.validation.count == 0; }
  const Curve& test_accuracy() const { return test_accuracy_; }

  absl::Status operator()(const EpochReport& r) {
    std::printf("epoch %d: train loss %.6f", r.epoch + 1, r.mean_loss);
    if (r.train_accuracy >= 0) std::printf(", train accuracy %.4f", r.train_accuracy);
    if (r.val_accuracy >= 0) std::printf(", validation accuracy %.4f", r.val_accuracy);
    if (r.val_loss >= 0) std::printf(", validation loss %.6f", r.val_loss);
    std::printf(", lr %.3g, %.3f s\n", r.lr, r.seconds);
    std::fflush(stdout);
    json_.Epoch(r);
    trained_s_ += r.seconds;
    if (o_.target_accuracy > 0 || test_curve()) {
      KILN_ASSIGN_OR_RETURN(EvalResult e, trainer_.Evaluate(data_.test));
      if (e.classification) {
        std::printf("epoch %d: test accuracy %.4f\n", r.epoch + 1, e.accuracy());
        if (test_curve()) test_accuracy_.push_back({r.epoch + 1.0, e.accuracy()});
      }
      if (o_.target_accuracy > 0 && e.accuracy() >= o_.target_accuracy) {
        std::printf("TARGET test accuracy %.4f >= %.4f after %d epochs, %.3f s of training\n",
                    e.accuracy(), o_.target_accuracy, r.epoch + 1, trained_s_);
        if (!o_.checkpoint.empty()) KILN_RETURN_IF_ERROR(Checkpoint(o_.checkpoint));
        return absl::CancelledError("target accuracy reached");
      }
    }
    return o_.checkpoint.empty() ? absl::OkStatus() : Checkpoint(o_.checkpoint);
  }
  absl::Status Checkpoint(const std::string& path) {
    return trainer_.Save(path, {{"example", info_.name}});
  }

 private:
  const DriverOptions& o_;
  const DriverInfo& info_;
  const DriverData& data_;
  Trainer& trainer_;
  JsonLog& json_;
  double trained_s_ = 0;  // training time so far (--target_accuracy)
  Curve test_accuracy_;
};

// Training with SIGINT and SIGTERM asking it to stop after the current step.
absl::StatusOr<TrainStats> TrainUntilStopped(Trainer& trainer, const Dataset& data,
                                             TrainConfig config) {
  g_stop.store(false);
  config.stop = &g_stop;
  StopSignals signals;
  return trainer.Train(data, config);
}

// Only what was trained, or loaded and explicitly asked for, is written: an untrained model
// never replaces a file.
absl::Status SaveParameters(const DriverOptions& o, EpochEnd& end, bool trained, bool loaded) {
  if (o.save.empty()) return absl::OkStatus();
  if (!trained && !(loaded && o.save_explicit)) {
    std::printf("not saving parameters: %s\n",
                loaded ? "nothing was trained (give --save=FILE to write the loaded ones)"
                       : "nothing was trained or loaded");
    return absl::OkStatus();
  }
  KILN_RETURN_IF_ERROR(end.Checkpoint(o.save));
  std::printf("saved parameters to %s\n", o.save.c_str());
  return absl::OkStatus();
}

// The closing lines: test accuracy (or a regression's mean loss) and RESULT; the exit code.
int Report(const DriverOptions& o, const DriverInfo& info, int epochs, int ranks,
           const TrainStats& stats, const EvalResult& r) {
  const double eval_rate = r.count / std::max(1e-9, r.seconds);
  const std::string tail = absl::StrFormat(
      "train_images_per_s=%.0f compile_s=%.2f train_s=%.3f eval_images_per_s=%.0f "
      "ranks=%d",
      stats.images_per_second(), info.compile_s, stats.seconds, eval_rate, ranks);
  if (!r.classification) {  // regression: the mean loss is the result
    std::printf("test loss: %.6f, the mean over %lld examples (a regression model: no accuracy)\n",
                r.mean_loss, static_cast<long long>(r.count));
    std::printf("RESULT example=%s epochs=%d test_loss=%.6f %s (regression: no test_accuracy)\n",
                info.name.c_str(), epochs, r.mean_loss, tail.c_str());
    if (o.min_accuracy <= 0) return 0;
    return DriverFail(absl::InvalidArgumentError(
        "--min_accuracy applies to classification; this model is evaluated by its mean loss"));
  }
  PrintConfusion(r);
  std::printf("test accuracy: %lld / %lld = %.4f (%.0f images/s)\n",
              static_cast<long long>(r.correct), static_cast<long long>(r.count), r.accuracy(),
              eval_rate);
  std::printf("RESULT example=%s epochs=%d test_accuracy=%.4f %s\n", info.name.c_str(), epochs,
              r.accuracy(), tail.c_str());
  if (r.accuracy() >= o.min_accuracy) return 0;
  std::fprintf(stderr, "error: test accuracy %.4f is below --min_accuracy %.4f\n", r.accuracy(),
               o.min_accuracy);
  return 1;
}

}  // namespace

int RunDriver(const DriverOptions& options, const DriverInfo& info, DriverData& data,
              Executable* train, Executable* eval, Communicator* comm, Communicator* device_comm) {
  const int64_t batch = std::max<int64_t>(1, info.batch);
  if (absl::Status s = ValidateDriverOptions(options, data, batch); !s.ok()) return DriverFail(s);
  const int ranks = comm ? comm->size() : 1;
  const DriverOptions& o = options;
  // Only rank 0 writes files: checkpoints and --save through Trainer::Save (a no-op elsewhere),
  // plots and the JSON log here. Every rank takes the same decisions (evaluations included).
  const bool writes = comm == nullptr || comm->rank() == 0;
  if (ranks > 1) {
    // Every rank got here (its steps compiled): from now on a collective that takes longer than
    // --collective_timeout means a rank died or hangs.
    const char ready = 1;
    std::vector<char> all(static_cast<size_t>(ranks));
    if (absl::Status s = comm->AllGather(&ready, 1, all.data()); !s.ok()) return DriverFail(s);
    comm->set_timeout(o.collective_timeout);
  }
  // Inputs are read before any training, so a bad file never costs a run.
  std::vector<float> predict_image;
  if (!o.predict.empty()) {
    absl::StatusOr<std::vector<float>> x =
        LoadDigitImage(o.predict, static_cast<int>(data.train.example_shape[1]),
                       static_cast<int>(data.train.example_shape[0]), o.invert);
    if (!x.ok()) return DriverFail(x.status());
    predict_image = std::move(*x);
  }
  Trainer trainer(train, eval);
  trainer.set_communicator(comm);
  trainer.set_device_communicator(device_comm);
  if (absl::Status s = trainer.Initialize(o.seed); !s.ok()) return DriverFail(s);
  absl::StatusOr<bool> loaded = RestoreState(o, trainer);
  if (!loaded.ok()) return DriverFail(loaded.status());
  absl::StatusOr<LrSchedule> schedule = Schedule(o, data.train, batch * ranks);
  if (!schedule.ok()) return DriverFail(schedule.status());
  TrainConfig config;
  config.epochs = o.eval_only ? 0 : std::max(0, o.epochs - trainer.epoch());
  config.max_steps = o.max_steps;
  config.log_every = o.log_every;
  config.schedule = *schedule;  // feeds the step's learning rate (constant or not)
  config.progress = o.progress;
  config.random_shift = o.random_shift;
  if (train != nullptr && train->signature().resident_batch > 0 && config.random_shift > 0) {
    std::printf(
        "note: --random_shift=%d is CPU-only; the resident training set is used as loaded\n",
        config.random_shift);
    config.random_shift = 0;
  }
  if (data.validation.count > 0) config.validation = &data.validation;
  JsonLog json;
  if (absl::Status s = json.Open(writes ? o.log_json : ""); !s.ok()) return DriverFail(s);
  config.on_log = [&json](const LossPoint& p) { json.Step(p); };
  EpochEnd end(o, info, data, trainer, json);
  config.on_epoch = [&end](const EpochReport& r) { return end(r); };
  std::printf("optimizer %s, lr schedule %s\n", info.optimizer.c_str(),
              schedule->ToString().c_str());
  if (ranks > 1) {
    std::printf(
        "data-parallel: global batch %lld = %d ranks x %lld (the learning rate applies to "
        "the global batch)\n",
        static_cast<long long>(batch * ranks), ranks, static_cast<long long>(batch));
  }

  TrainStats stats;
  if (config.epochs > 0) {
    absl::StatusOr<TrainStats> st = TrainUntilStopped(trainer, data.train, config);
    if (!st.ok()) return DriverFail(st.status());
    stats = *st;
    std::printf("trained %lld steps, %.0f images/s\n", static_cast<long long>(stats.steps),
                stats.images_per_second());
    if (ranks > 1 && stats.seconds > 0) {
      std::printf(
          "data-parallel: rank 0 spent %.3f s of %.3f s in collectives (%.1f%%, %.1f us "
          "per step)\n",
          stats.collective_seconds, stats.seconds, 100 * stats.collective_seconds / stats.seconds,
          1e6 * stats.collective_seconds / std::max<int64_t>(1, stats.steps));
    }
  }
  if (stats.interrupted) {
    const std::string path =
        o.checkpoint.empty() ? info.name + "_interrupted.safetensors" : o.checkpoint;
    const absl::Status saved = end.Checkpoint(path);  // rank 0 writes it
    if (saved.ok()) {
      std::printf(
          "interrupted (%s) in epoch %d at batch %lld, step %lld: the full training state is in "
          "%s; continue with --resume=%s\n",
          g_stop_signal == SIGTERM ? "SIGTERM" : "SIGINT", trainer.epoch() + 1,
          static_cast<long long>(trainer.batch_in_epoch()), static_cast<long long>(trainer.step()),
          path.c_str(), path.c_str());
      std::fflush(stdout);
    }
    if (ranks > 1) {
      // No rank exits before rank 0 has written the checkpoint: Open MPI's mpirun answers the
      // first rank that exits non-zero by sending SIGTERM to the others, and rank 0, its stop
      // handler spent on the first signal, was killed mid-write (a test saw no message and no
      // file about one run in four).
      const char done = 1;
      std::vector<char> all(static_cast<size_t>(ranks));
      (void)comm->AllGather(&done, 1, all.data());
    }
    if (!saved.ok()) return DriverFail(saved);
    return g_stop_signal == SIGTERM ? 143 : 130;
  }
  if (stats.best_epoch >= 0) {
    std::printf("best validation epoch: %d (the reported test accuracy is the final model's)\n",
                stats.best_epoch + 1);
  }
  if (absl::Status s = SaveParameters(o, end, stats.steps > 0, *loaded); !s.ok()) {
    return DriverFail(s);
  }
  if (absl::Status s = WritePlots(writes ? o.plot : "", info.name, stats, end.test_accuracy());
      !s.ok()) {
    return DriverFail(s);
  }
  if (!predict_image.empty()) {
    absl::StatusOr<int32_t> p = trainer.Predict(predict_image);
    if (!p.ok()) return DriverFail(p.status());
    std::printf("prediction for %s: %d\n", o.predict.c_str(), *p);
  }
  absl::StatusOr<EvalResult> result = trainer.Evaluate(data.test);
  if (!result.ok()) return DriverFail(result.status());
  return Report(o, info, config.epochs, ranks, stats, *result);
}

}  // namespace kiln
