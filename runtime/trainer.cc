#include "runtime/trainer.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "runtime/batch_source.h"
#include "runtime/data_parallel.h"
#include "runtime/epoch_meter.h"
#include "runtime/progress.h"
#include "runtime/step_args.h"

namespace kiln {
namespace {

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// The training step's hyperparameter inputs other than the batch start: the config's values or
// the step's defaults, the learning rate from the schedule and the step number set every step.
class Hyperparameters {
 public:
  // `example_offset`: this rank's first example's position in the global batch.
  static absl::StatusOr<Hyperparameters> Make(const Signature& sig, const TrainConfig& config,
                                              int64_t example_offset) {
    for (const auto& [name, v] : config.hyper) {
      if (sig.FindInput(ArgRole::kHyper, name) < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("the optimizer has no hyperparameter '", name, "'"));
      }
    }
    if (config.schedule && sig.FindInput(ArgKind::kLearningRate) < 0) {
      return absl::InvalidArgumentError(
          "a learning-rate schedule needs a step with a learning-rate input");
    }
    Hyperparameters h;
    h.schedule_ = config.schedule;
    h.values_.resize(sig.inputs.size());
    for (size_t i = 0; i < sig.inputs.size(); ++i) {
      const ArgSpec& a = sig.inputs[i];
      if (a.role != ArgRole::kHyper || a.kind == ArgKind::kBatchStart) continue;
      Tensor& t = h.values_[i] = Tensor(a.type, a.shape);
      auto it = config.hyper.find(a.name);
      t.Set(0, it != config.hyper.end() ? it->second : a.init.a);
      if (a.kind == ArgKind::kLearningRate) h.lr_ = &t;
      if (a.kind == ArgKind::kStep) h.step_ = &t;
      if (a.kind == ArgKind::kExampleOffset) t.Set(0, static_cast<double>(example_offset));
    }
    return h;
  }
  absl::StatusOr<TensorRef> Feed(const Signature& sig, const ArgSpec& a) {
    return values_[&a - sig.inputs.data()].ref();
  }
  // Sets the inputs for 1-based step `step` of 0-based `epoch`; returns the learning rate.
  double ForStep(int64_t step, int epoch) {
    if (step_ != nullptr) step_->Set(0, static_cast<double>(step));
    if (lr_ == nullptr) return 0;
    if (!schedule_) return lr_->At(0);
    const double lr = schedule_->At(step - 1, epoch);
    lr_->Set(0, lr);
    return lr;  // as the schedule gives it (the step may read it in float32)
  }

 private:
  std::vector<Tensor> values_;  // by input index
  Tensor* lr_ = nullptr;
  Tensor* step_ = nullptr;
  std::optional<LrSchedule> schedule_;
};

}  // namespace

// What one Train call sets up once and each epoch uses.
struct Trainer::Epoch {
  std::unique_ptr<BatchSource> batches;
  std::optional<Hyperparameters> hyper;
  std::unique_ptr<EpochMeter> meter;
  std::array<StepArgs, 2> args;  // for each half of the store as the current one
  bool resident = false;
  double last_finite = 0;
  int64_t last_finite_step = 0;
  double collective_seconds = 0;  // data-parallel: time in the step's collectives
};

Trainer::Trainer(Executable* train, Executable* eval) : train_(train), eval_(eval) {}

Trainer::~Trainer() {
  for (Executable* x : {train_, eval_}) {  // the device copies go with the trainer
    if (x && x->device_tensors() == store_.device()) x->set_device_tensors(nullptr);
  }
}

absl::Status Trainer::CheckInitialized(const char* call) const {
  if (initialized_) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("call Initialize() (or Load()) before ", call, "()"));
}

absl::Status Trainer::Initialize(uint64_t seed) {
  counters_ = TrainingCounters{};
  counters_.seed = seed;
  Executable* source = train_ ? train_ : eval_;
  if (source == nullptr) return absl::FailedPreconditionError("Trainer has no step");
  KILN_RETURN_IF_ERROR(store_.Initialize(source->signature(), seed));
  if (eval_ != nullptr && train_ != nullptr) {
    KILN_RETURN_IF_ERROR(store_.CheckReads(eval_->signature(), "evaluation"));
  }
  const bool on_device = (train_ && train_->on_device()) || (eval_ && eval_->on_device());
  if (on_device || emulate_device_) {
    store_.EnableDevice(on_device ? DeviceTensors::Mode::kDevice : DeviceTensors::Mode::kEmulated);
  }
  for (Executable* x : {train_, eval_}) {
    if (x) x->set_device_tensors(store_.device());
  }
  initialized_ = true;
  return SyncFromRankZero();
}

absl::Status Trainer::SyncFromRankZero() {
  if (ranks() <= 1) return absl::OkStatus();
  KILN_RETURN_IF_ERROR(store_.ToHost());
  for (ParameterStore::Slot& s : store_.slots()) {
    Tensor& t = store_.Current(s);
    KILN_RETURN_IF_ERROR(comm_->Broadcast(t.raw(), t.bytes(), 0));
  }
  store_.HostWrote();
  int64_t c[6] = {counters_.step,           counters_.epoch,
                  counters_.batch_in_epoch, static_cast<int64_t>(counters_.seed),
                  counters_.global_batch,   counters_.ranks};
  KILN_RETURN_IF_ERROR(comm_->Broadcast(c, sizeof c, 0));
  counters_.step = c[0];
  counters_.epoch = static_cast<int>(c[1]);
  counters_.batch_in_epoch = c[2];
  counters_.seed = static_cast<uint64_t>(c[3]);
  counters_.global_batch = c[4];
  counters_.ranks = static_cast<int>(c[5]);
  return absl::OkStatus();
}

absl::Status Trainer::AverageBuffers() {
  if (ranks() <= 1) return absl::OkStatus();
  bool any = false;
  for (ParameterStore::Slot& s : store_.slots()) {
    // Batch-norm running statistics: state of no parameter that is not a resident running sum.
    if (s.spec.role != ArgRole::kState || s.spec.param >= 0 ||
        s.spec.kind == ArgKind::kRunningSum) {
      continue;
    }
    KILN_RETURN_IF_ERROR(store_.ToHost(s));
    Tensor& t = store_.Current(s);
    KILN_RETURN_IF_ERROR(comm_->AllReduceSum(t.raw(), t.size(), t.type()));
    for (int64_t i = 0; i < t.size(); ++i) t.Set(i, t.At(i) / ranks());
    any = true;
  }
  if (any) store_.HostWrote();
  return absl::OkStatus();
}

absl::Status Trainer::CheckConfig(const TrainConfig& config, const Dataset& data,
                                  int64_t local_batch) const {
  const int64_t batch = local_batch * ranks();  // the global batch
  auto bad = [](const std::string& what) { return absl::InvalidArgumentError(what); };
  if (config.epochs < 0) {
    return bad(absl::StrCat("TrainConfig.epochs must be >= 0, got ", config.epochs));
  }
  if (config.log_every < 0) {
    return bad(
        absl::StrCat("TrainConfig.log_every must be >= 0 (0: never), got ", config.log_every));
  }
  if (config.max_steps < -1) {
    return bad(
        absl::StrCat("TrainConfig.max_steps must be >= -1 (-1: no limit), got ", config.max_steps));
  }
  if (config.random_shift < 0) {
    return bad(absl::StrCat("TrainConfig.random_shift must be >= 0, got ", config.random_shift));
  }
  if (config.random_shift > 0) {
    const Shape& s = data.example_shape;
    if (s.size() != 2) {
      return bad(absl::StrCat("random_shift=", config.random_shift,
                              " shifts 2-D images [height, width]; these examples are ",
                              ShapeString(s)));
    }
    if (config.random_shift >= std::min(s[0], s[1])) {
      return bad(absl::StrCat("random_shift must be in [0, ", std::min(s[0], s[1]) - 1, "] for ",
                              ShapeString(s), " images, got ", config.random_shift));
    }
  }
  if (batch > data.count) {
    return bad(absl::StrCat(
        "the training batch (", batch,
        ranks() > 1 ? absl::StrCat(" = ", ranks(), " ranks x ", local_batch) : "",
        ") is larger than the data set (", data.count, " examples): no step would run"));
  }
  if (counters_.batch_in_epoch > data.count / batch) {
    return bad(absl::StrCat("the trainer stopped at batch ", counters_.batch_in_epoch, " of epoch ",
                            counters_.epoch + 1, ", but this data set has ", data.count / batch,
                            " batches of ", batch, " per epoch"));
  }
  const int lr = train_->signature().FindInput(ArgKind::kLearningRate);
  auto given =
      lr >= 0 ? config.hyper.find(train_->signature().inputs[lr].name) : config.hyper.end();
  if (given != config.hyper.end() && (!std::isfinite(given->second) || given->second <= 0)) {
    return bad(absl::StrCat("TrainConfig.hyper[\"", given->first,
                            "\"]: expected a finite learning rate > 0, got ", given->second));
  }
  if (config.schedule) {
    const int64_t run_steps =
        static_cast<int64_t>(counters_.epoch + config.epochs) * (data.count / batch);
    KILN_RETURN_IF_ERROR(config.schedule->Validate(run_steps));
  }
  return absl::OkStatus();
}

absl::StatusOr<TrainStats> Trainer::Train(const Dataset& data, const TrainConfig& config) {
  KILN_RETURN_IF_ERROR(CheckInitialized("Train"));
  if (train_ == nullptr) return absl::FailedPreconditionError("Trainer has no training step");
  const Signature& sig = train_->signature();
  Epoch e;
  e.resident = sig.resident_batch > 0;
  KILN_ASSIGN_OR_RETURN(e.batches, MakeTrainingBatches(sig, data, counters_.seed, config.shuffle,
                                                       config.random_shift, store_.device()));
  e.batches->set_slice(rank(), ranks());
  TrainConfig adjusted;
  const TrainConfig* cfg = &config;
  std::unique_ptr<GradientSum> sum;  // data-parallel: for this call only
  if (ranks() > 1) {
    KILN_ASSIGN_OR_RETURN(sum, GradientSum::Install(train_, comm_, device_comm_, store_.device(),
                                                    &e.collective_seconds));
    adjusted = DataParallelConfig(config, rank(), ranks());
    cfg = &adjusted;
  }
  const int64_t global_batch = e.batches->batch() * ranks();
  if (counters_.batch_in_epoch > 0 && counters_.global_batch > 0 &&
      counters_.global_batch != global_batch) {
    if (rank() == 0) {
      std::printf(
          "note: the checkpoint stopped inside epoch %d after %lld global batches of %lld (%d "
          "ranks); this run's global batch is %lld (%d ranks): resuming at the start of epoch %d\n",
          counters_.epoch + 1, static_cast<long long>(counters_.batch_in_epoch),
          static_cast<long long>(counters_.global_batch), counters_.ranks,
          static_cast<long long>(global_batch), ranks(), counters_.epoch + 2);
    }
    ++counters_.epoch;
    counters_.batch_in_epoch = 0;
  }
  counters_.global_batch = global_batch;
  counters_.ranks = ranks();
  KILN_RETURN_IF_ERROR(CheckConfig(*cfg, data, e.batches->batch()));
  KILN_ASSIGN_OR_RETURN(e.hyper, Hyperparameters::Make(sig, *cfg, rank() * e.batches->batch()));
  e.meter = std::make_unique<EpochMeter>(sig, store_, e.resident);
  auto feed = [&](const ArgSpec& a) -> absl::StatusOr<TensorRef> {
    if (a.role == ArgRole::kLoss || a.role == ArgRole::kMetric) return e.meter->Feed(a);
    if (a.role == ArgRole::kHyper && a.kind != ArgKind::kBatchStart) return e.hyper->Feed(sig, a);
    return e.batches->Feed(a);
  };
  for (int parity : {0, 1}) {
    KILN_ASSIGN_OR_RETURN(e.args[parity], BindStepArgs(sig, store_, parity, feed));
  }
  TrainStats stats;
  double best_val = -1;
  for (int n = 0; n < config.epochs; ++n) {
    KILN_ASSIGN_OR_RETURN(EpochReport report, RunEpoch(e, *cfg, stats));
    KILN_RETURN_IF_ERROR(AverageBuffers());
    if (stats.interrupted) break;  // the caller checkpoints; the epoch is not over
    const bool complete = counters_.batch_in_epoch == 0;
    if (config.validation != nullptr) {
      KILN_ASSIGN_OR_RETURN(EvalResult v, Evaluate(*config.validation));
      report.val_accuracy = v.accuracy();
      report.val_loss = v.mean_loss;
      if (report.val_accuracy > best_val) {
        best_val = report.val_accuracy;
        stats.best_epoch = report.epoch;
      }
    }
    stats.epochs.push_back(report);
    if (config.on_epoch && complete) {
      absl::Status st = config.on_epoch(report);
      if (absl::IsCancelled(st)) break;  // the callback's way to end training early
      KILN_RETURN_IF_ERROR(st);
    }
    if (config.max_steps >= 0 && stats.steps >= config.max_steps) break;
  }
  stats.metric_totals = e.meter->metric_totals();
  stats.collective_seconds = e.collective_seconds;
  return stats;
}

absl::StatusOr<EpochReport> Trainer::RunEpoch(Epoch& e, const TrainConfig& config,
                                              TrainStats& stats) {
  const auto start = std::chrono::steady_clock::now();
  EpochReport report;
  report.epoch = counters_.epoch;
  const int64_t first = counters_.batch_in_epoch, batch = e.batches->batch() * ranks();
  e.batches->StartEpoch(report.epoch);
  e.meter->StartEpoch();
  Progress progress(absl::StrCat("epoch ", report.epoch + 1), e.batches->num_batches(), batch,
                    config.progress);
  auto diverged = [&](double loss, const std::string& where) {
    progress.Finish();
    return absl::AbortedError(absl::StrCat(
        "training diverged: the loss is ", loss, " ", where, "; last finite loss ", e.last_finite,
        " at step ", e.last_finite_step,
        e.resident ? ". The parameters are those after the last step (resident training checks "
                     "the loss when it is logged and at the end of each epoch)."
                   : ". The parameters are those before this step."));
  };
  int64_t b = first;
  for (; b < e.batches->num_batches(); ++b) {
    if (config.max_steps >= 0 && stats.steps >= config.max_steps) break;
    if (config.stop != nullptr && config.stop->load() && ranks() == 1) {
      stats.interrupted = true;
      break;
    }
    e.batches->Prepare(b);
    report.lr = e.hyper->ForStep(counters_.step + 1, report.epoch);
    KILN_RETURN_IF_ERROR(train_->Run(e.args[store_.parity()].in, e.args[store_.parity()].out));
    const bool log = config.log_every > 0 && b % config.log_every == 0;
    bool stop_after = false;  // data-parallel: a stop asked on any rank, after this step
    if (ranks() > 1) {
      double stop = config.stop != nullptr && config.stop->load() ? 1 : 0;
      const auto t0 = std::chrono::steady_clock::now();
      KILN_RETURN_IF_ERROR(e.meter->ReduceStep(*comm_, stop, log));
      e.collective_seconds += Seconds(t0);
      stop_after = stop > 0;
    }
    KILN_ASSIGN_OR_RETURN(std::optional<double> loss, e.meter->AfterStep(log));
    // Checked on the host: the compiled code assumes no NaNs and may fold a check away.
    if (loss && !std::isfinite(*loss)) {
      return diverged(*loss, absl::StrCat("at step ", counters_.step + 1, " (epoch ",
                                          report.epoch + 1, ", batch ", b, ")"));
    }
    if (loss) {
      e.last_finite = *loss;
      e.last_finite_step = counters_.step + 1;
    }
    store_.Swap();
    ++counters_.step;
    counters_.batch_in_epoch = b + 1;
    if (log) {
      stats.logged.push_back({report.epoch, b, counters_.step, *loss, report.lr});
      if (config.on_log) config.on_log(stats.logged.back());
      if (rank() == 0) {
        std::printf("epoch_id: %d, batch_id: %lld, loss is: %.6f\n", report.epoch,
                    static_cast<long long>(b), *loss);
        std::fflush(stdout);
      }
    }
    ++stats.steps;
    stats.images += batch;
    progress.Update(b + 1);
    if (stop_after) {
      stats.interrupted = true;
      ++b;
      break;
    }
  }
  KILN_RETURN_IF_ERROR(e.meter->EndEpoch());
  if (!std::isfinite(e.meter->epoch_loss_sum())) {
    return diverged(e.meter->epoch_loss_sum(),
                    absl::StrCat("summed over epoch ", report.epoch + 1));
  }
  progress.Finish();
  const int64_t taken = b - first;
  stats.seconds += Seconds(start);
  if (taken > 0) {
    report.mean_loss = e.meter->epoch_loss_sum() / static_cast<double>(taken);
    if (e.meter->epoch_correct() >= 0) {
      report.train_accuracy = e.meter->epoch_correct() / static_cast<double>(taken * batch);
    }
  }
  if (b == e.batches->num_batches()) {  // complete
    ++counters_.epoch;
    counters_.batch_in_epoch = 0;
  }
  report.seconds = Seconds(start);
  return report;
}

absl::StatusOr<EvalResult> Trainer::Evaluate(const Dataset& data) {
  KILN_RETURN_IF_ERROR(CheckInitialized("Evaluate"));
  if (eval_ == nullptr) return absl::FailedPreconditionError("Trainer has no evaluation step");
  if (ranks() <= 1) return EvaluateStep(*eval_, store_, data);
  // Data-parallel: rank r evaluates examples [r * count / N, (r + 1) * count / N); the counts,
  // the loss sum and the confusion matrix are summed.
  const int64_t n = ranks(), lo = data.count * rank() / n, hi = data.count * (rank() + 1) / n;
  Dataset part;
  part.count = hi - lo;
  part.example_shape = data.example_shape;
  part.target_shape = data.target_shape;
  const int64_t es = data.example_size(), ts = data.target_size();
  auto range = [](const auto& v, int64_t a, int64_t b) {
    using V = std::decay_t<decltype(v)>;
    return v.empty() ? V() : V(v.begin() + a, v.begin() + b);
  };
  part.pixels = range(data.pixels, lo * es, hi * es);
  part.values = range(data.values, lo * es, hi * es);
  part.labels = range(data.labels, lo, hi);
  part.targets = range(data.targets, lo * ts, hi * ts);
  EvalResult r;
  if (part.count > 0) {
    KILN_ASSIGN_OR_RETURN(r, EvaluateStep(*eval_, store_, part));
  } else {
    r.classification = !data.regression();
  }
  int classes = 1;
  for (int32_t l : data.labels) classes = std::max(classes, l + 1);
  std::vector<double> sums = {static_cast<double>(r.count), static_cast<double>(r.correct),
                              r.mean_loss >= 0 ? r.mean_loss * r.count : -1, r.seconds / n};
  for (int t = 0; t < classes; ++t) {
    for (int p = 0; p < classes; ++p) {
      const bool has =
          t < static_cast<int>(r.confusion.size()) && p < static_cast<int>(r.confusion[t].size());
      sums.push_back(has ? static_cast<double>(r.confusion[t][p]) : 0);
    }
  }
  KILN_RETURN_IF_ERROR(
      comm_->AllReduceSum(sums.data(), static_cast<int64_t>(sums.size()), ScalarType::kF64));
  r.count = static_cast<int64_t>(sums[0]);
  r.correct = static_cast<int64_t>(sums[1]);
  r.mean_loss = sums[2] >= 0 && r.count > 0 ? sums[2] / r.count : -1;
  r.seconds = sums[3];
  if (r.classification) {
    r.confusion.assign(classes, std::vector<int64_t>(classes, 0));
    for (int t = 0; t < classes; ++t) {
      for (int p = 0; p < classes; ++p)
        r.confusion[t][p] = static_cast<int64_t>(sums[4 + t * classes + p]);
    }
  }
  return r;
}

absl::StatusOr<int32_t> Trainer::Predict(const std::vector<float>& example) {
  KILN_RETURN_IF_ERROR(CheckInitialized("Predict"));
  if (eval_ == nullptr) return absl::FailedPreconditionError("Trainer has no evaluation step");
  return PredictOne(*eval_, store_, example);
}

absl::Status Trainer::Save(const std::string& path,
                           const std::map<std::string, std::string>& metadata) const {
  if (!initialized_) return absl::FailedPreconditionError("nothing to save: not initialized");
  if (rank() != 0) return absl::OkStatus();  // data-parallel: rank 0 writes
  return SaveCheckpoint(path, store_, counters_, metadata);
}

absl::Status Trainer::Load(const std::string& path, bool restore_counters) {
  KILN_ASSIGN_OR_RETURN(SafetensorsFile f, LoadSafetensors(path));
  return LoadFrom(f, path, restore_counters);
}

absl::Status Trainer::LoadFrom(const SafetensorsFile& f, const std::string& path,
                               bool restore_counters) {
  if (!initialized_) {  // evaluating or fine-tuning a checkpoint: construct, Load, go
    uint64_t seed = 1;
    auto it = f.metadata.find("seed");
    if (it != f.metadata.end() && !absl::SimpleAtoi(it->second, &seed)) seed = 1;
    KILN_RETURN_IF_ERROR(Initialize(seed));
  }
  KILN_ASSIGN_OR_RETURN(TrainingCounters c, RestoreCheckpoint(f, path, store_, counters_));
  if (restore_counters) counters_ = c;
  return SyncFromRankZero();
}

const Tensor& Trainer::parameter(const std::string& name) const {
  const ParameterStore::Slot* s = store_.Find(name);
  KILN_CHECK(s != nullptr);
  KILN_CHECK(store_.ToHost(*s).ok());
  return store_.Current(*s);
}

std::vector<std::string> Trainer::parameter_names() const {
  std::vector<std::string> out;
  for (const ParameterStore::Slot& s : store_.slots()) {
    if (s.spec.role == ArgRole::kParam) out.push_back(s.spec.name);
  }
  return out;
}

}  // namespace kiln
