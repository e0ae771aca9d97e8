#include "runtime/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "runtime/dataset.h"
#include "runtime/init.h"
#include "runtime/progress.h"
#include "runtime/safetensors.h"

namespace kiln {
namespace {

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

double ScalarValue(const Tensor& t) {
  switch (t.type()) {
    case ScalarType::kF32:
      return t.data<float>()[0];
    case ScalarType::kF64:
      return t.data<double>()[0];
    case ScalarType::kI32:
      return t.data<int32_t>()[0];
    case ScalarType::kU8:
      return t.data<uint8_t>()[0];
  }
  return 0;
}

void SetScalar(Tensor& t, double v) {
  if (t.type() == ScalarType::kF64) {
    t.data<double>()[0] = v;
  } else if (t.type() == ScalarType::kI32) {
    t.data<int32_t>()[0] = static_cast<int32_t>(v);
  } else {
    t.data<float>()[0] = static_cast<float>(v);
  }
}

// Buffers for the per-batch data inputs of a step: the image tensor and the label tensor,
// recognized by dtype (float images, int32 labels).
struct DataBuffers {
  std::vector<Tensor> tensors;
  Tensor* images = nullptr;
  Tensor* labels = nullptr;
};

// Batch b of `feeder` into the image tensor: floats in [0, 1], or raw pixels for a step that
// normalizes them itself.
int64_t FillImages(const BatchFeeder& feeder, int64_t b, Tensor& images, int32_t* labels) {
  return images.type() == ScalarType::kU8 ? feeder.Fill(b, images.data<uint8_t>(), labels)
                                          : feeder.Fill(b, images.data<float>(), labels);
}

absl::Status MakeDataBuffers(const Signature& sig, const Dataset& data, DataBuffers& d) {
  for (const ArgSpec& a : sig.inputs) {
    if (a.role == ArgRole::kData) d.tensors.emplace_back(a.type, a.shape);
  }
  for (Tensor& t : d.tensors) {
    if (t.type() == ScalarType::kI32 && d.labels == nullptr) d.labels = &t;
    if ((t.type() == ScalarType::kF32 || t.type() == ScalarType::kU8) && d.images == nullptr) {
      d.images = &t;
    }
  }
  if (d.images == nullptr) {
    return absl::InvalidArgumentError(
        "the step has no float32 (normalized) or uint8 (raw pixels) data input for the images");
  }
  const Shape& s = d.images->shape();
  if (s.empty() || NumElements(s) != s[0] * data.example_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the step's image input has shape ", ShapeString(s), ", expected [batch, ...] with ",
        data.example_size(), " values per example (data examples are ",
        ShapeString(data.example_shape), ")"));
  }
  return absl::OkStatus();
}

// Position of the hyperparameter `name` among the step's hyperparameter inputs, or -1.
int HyperIndex(const Signature& sig, const std::string& name) {
  int k = 0;
  for (const ArgSpec& a : sig.inputs) {
    if (a.role != ArgRole::kHyper) continue;
    if (a.name == name) return k;
    ++k;
  }
  return -1;
}

}  // namespace

Trainer::Trainer(Executable* train, Executable* eval) : train_(train), eval_(eval) {}

Trainer::~Trainer() {
  for (Executable* x : {train_, eval_}) {  // the registry goes with the trainer
    if (x && x->device_tensors() == device_.get()) x->set_device_tensors(nullptr);
  }
}

Trainer::Slot* Trainer::FindSlot(const std::string& name) {
  for (Slot& s : slots_) {
    if (s.name == name) return &s;
  }
  return nullptr;
}
const Trainer::Slot* Trainer::FindSlot(const std::string& name) const {
  return const_cast<Trainer*>(this)->FindSlot(name);
}

absl::Status Trainer::Initialize(uint64_t seed) {
  slots_.clear();
  current_ = 0;
  step_ = 0;
  epoch_ = 0;
  batch_in_epoch_ = 0;
  seed_ = seed;
  Executable* source = train_ ? train_ : eval_;
  if (source == nullptr) return absl::FailedPreconditionError("Trainer has no step");
  for (const ArgSpec& a : source->signature().inputs) {
    if (a.role != ArgRole::kParam && a.role != ArgRole::kState) continue;
    Slot s;
    s.name = a.name;
    s.role = a.role;
    s.buf[0] = Tensor(a.type, a.shape);
    s.buf[1] = Tensor(a.type, a.shape);
    // Parameters by their initializer; optimizer state zeros; buffers (running statistics)
    // by theirs. Both halves of a state slot start equal.
    KILN_RETURN_IF_ERROR(InitializeTensor(a.name, a.init, seed, s.buf[0]));
    if (a.role == ArgRole::kState) s.buf[1] = s.buf[0];
    slots_.push_back(std::move(s));
  }
  // The evaluation step must read the same parameters.
  if (eval_ != nullptr && train_ != nullptr) {
    for (const ArgSpec& a : eval_->signature().inputs) {
      if (a.role != ArgRole::kParam) continue;
      const Slot* s = FindSlot(a.name);
      if (s == nullptr || s->buf[0].shape() != a.shape) {
        return absl::InvalidArgumentError(
            absl::StrCat("evaluation step parameter '", a.name, "' ", ShapeString(a.shape),
                         " does not match the training step's parameters"));
      }
    }
  }
  const bool on_device = (train_ && train_->on_device()) || (eval_ && eval_->on_device());
  std::unique_ptr<DeviceTensors> device;
  if (on_device || emulate_device_) {
    device = std::make_unique<DeviceTensors>(on_device ? DeviceTensors::Mode::kDevice
                                                       : DeviceTensors::Mode::kEmulated);
    for (Slot& s : slots_) {
      for (Tensor& t : s.buf) device->Add(t.ref());
    }
  }
  for (Executable* x : {train_, eval_}) {
    if (x) x->set_device_tensors(device.get());
  }
  device_ = std::move(device);
  initialized_ = true;
  return absl::OkStatus();
}

absl::Status Trainer::SlotsToHost() const {
  if (device_ == nullptr) return absl::OkStatus();
  for (const Slot& s : slots_) KILN_RETURN_IF_ERROR(device_->ToHost(s.buf[current_].ref()));
  return absl::OkStatus();
}

void Trainer::SlotsWritten() {
  if (device_ == nullptr) return;
  for (Slot& s : slots_) {
    for (Tensor& t : s.buf) device_->HostWrote(t.ref());
  }
}

absl::Status Trainer::CheckResidentData(const Dataset& data) const {
  if (device_ == nullptr) {
    return absl::FailedPreconditionError(
        "a resident training step (the whole training set as an input) needs device residency: "
        "a GPU step, or set_device_emulation(true) before Initialize()");
  }
  const Signature& sig = train_->signature();
  for (const ArgSpec& a : sig.inputs) {
    if (a.role != ArgRole::kDataset) continue;
    const bool images = a.type == ScalarType::kU8;
    if (a.shape.empty() || a.shape[0] != data.count ||
        (a.name != kOrderInput && !images && a.type != ScalarType::kI32) ||
        (images && NumElements(a.shape) != data.count * data.example_size()) ||
        (!images && a.shape.size() != 1)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the resident training step was compiled for a data set input '", a.name, "' ",
          ScalarTypeName(a.type), ShapeString(a.shape), "; the training data has ", data.count,
          " examples of shape ", ShapeString(data.example_shape),
          " (resident steps take raw uint8 pixels and int32 labels of the whole set)"));
    }
  }
  return absl::OkStatus();
}

absl::Status Trainer::CheckConfig(const TrainConfig& config, const Dataset& data,
                                  int64_t batch) const {
  auto bad = [](const std::string& what) { return absl::InvalidArgumentError(what); };
  if (config.epochs < 0)
    return bad(absl::StrCat("TrainConfig.epochs must be >= 0, got ", config.epochs));
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
    return bad(absl::StrCat("the training batch (", batch, ") is larger than the data set (",
                            data.count, " examples): no step would run"));
  }
  if (batch_in_epoch_ > data.count / batch) {
    return bad(absl::StrCat("the trainer stopped at batch ", batch_in_epoch_, " of epoch ",
                            epoch_ + 1, ", but this data set has ", data.count / batch,
                            " batches of ", batch, " per epoch"));
  }
  auto lr = config.hyper.find("lr");
  if (lr != config.hyper.end() && (!std::isfinite(lr->second) || lr->second <= 0)) {
    return bad(absl::StrCat("TrainConfig.hyper[\"lr\"]: expected a finite learning rate > 0, got ",
                            lr->second));
  }
  if (config.schedule) {
    const int64_t run_steps = static_cast<int64_t>(epoch_ + config.epochs) * (data.count / batch);
    KILN_RETURN_IF_ERROR(config.schedule->Validate(run_steps));
  }
  return absl::OkStatus();
}

absl::StatusOr<TrainStats> Trainer::Train(const Dataset& data, const TrainConfig& config) {
  if (!initialized_) return absl::FailedPreconditionError("call Initialize() before Train()");
  if (train_ == nullptr) return absl::FailedPreconditionError("Trainer has no training step");
  const Signature& sig = train_->signature();
  const bool resident = sig.resident_batch > 0;
  DataBuffers d;
  Tensor order;  // resident: the epoch's permutation, uploaded once per epoch
  int64_t batch = sig.resident_batch;
  if (resident) {
    KILN_RETURN_IF_ERROR(CheckResidentData(data));
    if (config.random_shift > 0) {
      return absl::InvalidArgumentError(
          "random_shift is not available with resident training: the training set stays on "
          "the device as loaded (train on the CPU path to augment)");
    }
    order = Tensor(ScalarType::kI32, {data.count});
  } else {
    KILN_RETURN_IF_ERROR(MakeDataBuffers(sig, data, d));
    if (d.labels == nullptr) return absl::InvalidArgumentError("the step has no int32 label input");
    batch = d.images->shape()[0];
  }
  KILN_RETURN_IF_ERROR(CheckConfig(config, data, batch));

  // Hyperparameters: the step's defaults, overridden by the config.
  std::vector<Tensor> hyper;
  for (const ArgSpec& a : sig.inputs) {
    if (a.role != ArgRole::kHyper) continue;
    hyper.emplace_back(a.type, a.shape);
    auto it = config.hyper.find(a.name);
    SetScalar(hyper.back(), it != config.hyper.end() ? it->second : a.init.a);
  }
  for (const auto& [name, v] : config.hyper) {
    if (sig.FindInput(ArgRole::kHyper, name) < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("the optimizer has no hyperparameter '", name, "'"));
    }
  }
  std::vector<Tensor> scalars;  // loss and metrics
  for (const ArgSpec& a : sig.outputs) {
    if (a.role == ArgRole::kLoss || a.role == ArgRole::kMetric)
      scalars.emplace_back(a.type, a.shape);
  }
  // Resident: the training set (as the step's inputs declare it), its permutation, the loss and
  // metrics live on the device for this call; they leave it when the call returns (the data set
  // and these tensors may be freed afterwards, and their addresses reused).
  struct Unregister {
    DeviceTensors* dev;
    std::vector<const void*> data;
    ~Unregister() {
      for (const void* p : data) dev->Remove(p);
    }
  } unregister{device_.get(), {}};
  if (resident) {
    std::vector<TensorRef> refs = {order.ref()};
    for (const ArgSpec& a : sig.inputs) {
      if (a.role != ArgRole::kDataset || a.name == kOrderInput) continue;
      void* p = a.type == ScalarType::kU8
                    ? static_cast<void*>(const_cast<uint8_t*>(data.pixels.data()))
                    : static_cast<void*>(const_cast<int32_t*>(data.labels.data()));
      refs.push_back(TensorRef{p, a.type, a.shape});
    }
    for (Tensor& t : scalars) refs.push_back(t.ref());
    for (const TensorRef& r : refs) {
      device_->Add(r);
      unregister.data.push_back(r.data);
    }
  }

  // Argument lists for the two parities of the double-buffered state.
  std::vector<TensorRef> in[2], out[2];
  for (int parity = 0; parity < 2; ++parity) {
    size_t data_i = 0, hyper_i = 0, scalar_i = 0;
    for (const ArgSpec& a : sig.inputs) {
      switch (a.role) {
        case ArgRole::kData:
          in[parity].push_back(d.tensors[data_i++].ref());
          break;
        case ArgRole::kDataset:
          if (a.name == kOrderInput) {
            in[parity].push_back(order.ref());
          } else if (a.type == ScalarType::kU8) {
            in[parity].push_back(
                TensorRef{const_cast<uint8_t*>(data.pixels.data()), a.type, a.shape});
          } else {
            in[parity].push_back(
                TensorRef{const_cast<int32_t*>(data.labels.data()), a.type, a.shape});
          }
          break;
        case ArgRole::kHyper:
          in[parity].push_back(hyper[hyper_i++].ref());
          break;
        default: {
          Slot* s = FindSlot(a.name);
          if (s == nullptr)
            return absl::InternalError(absl::StrCat("no buffer for '", a.name, "'"));
          in[parity].push_back(s->buf[parity].ref());
        }
      }
    }
    for (const ArgSpec& a : sig.outputs) {
      if (a.role == ArgRole::kLoss || a.role == ArgRole::kMetric) {
        out[parity].push_back(scalars[scalar_i++].ref());
      } else {
        Slot* s = FindSlot(a.name);
        if (s == nullptr) return absl::InternalError(absl::StrCat("no buffer for '", a.name, "'"));
        out[parity].push_back(s->buf[1 - parity].ref());
      }
    }
  }

  const int lr_index = HyperIndex(sig, "lr");
  const int step_index = HyperIndex(sig, kStepHyper);
  const int start_index = HyperIndex(sig, kBatchStartHyper);
  if (config.schedule && lr_index < 0) {
    return absl::InvalidArgumentError("a learning-rate schedule needs a step input named 'lr'");
  }
  int correct_index = -1;
  {
    int k = 0;
    for (const ArgSpec& a : sig.outputs) {
      if (a.role != ArgRole::kLoss && a.role != ArgRole::kMetric) continue;
      if (a.role == ArgRole::kMetric && a.name == "correct") correct_index = k;
      ++k;
    }
  }

  BatchFeeder feeder(data, batch, seed_, config.shuffle, /*drop_last=*/true);
  feeder.set_random_shift(config.random_shift);
  TrainStats stats;
  for (const ArgSpec& a : sig.outputs) {
    if (a.role == ArgRole::kMetric) stats.metric_totals[a.name] = 0;
  }
  double last_finite = 0;
  int64_t last_finite_step = 0;
  double best_val = -1;
  // Resident: the per-epoch sums the step accumulates on the device.
  std::vector<Slot*> sums;
  for (Slot& s : slots_) {
    if (resident && s.name.rfind(kSumPrefix, 0) == 0) sums.push_back(&s);
  }
  auto diverged = [&](double loss, const std::string& where) {
    return absl::AbortedError(absl::StrCat(
        "training diverged: the loss is ", loss, " ", where, "; last finite loss ", last_finite,
        " at step ", last_finite_step,
        resident ? ". The parameters are those after the last step (resident training checks "
                   "the loss when it is logged and at the end of each epoch)."
                 : ". The parameters are those before this step."));
  };
  for (int e = 0; e < config.epochs; ++e) {
    const int epoch = epoch_;
    const int64_t first_batch = batch_in_epoch_;  // > 0: resuming an interrupted epoch
    auto epoch_start = std::chrono::steady_clock::now();
    feeder.StartEpoch(epoch);
    if (resident) {  // the epoch's permutation and zeroed sums: the only uploads of the epoch
      int32_t* o = order.data<int32_t>();
      for (size_t i = 0; i < feeder.order().size(); ++i)
        o[i] = static_cast<int32_t>(feeder.order()[i]);
      device_->HostWrote(order.ref());
      for (Slot* s : sums) {
        for (Tensor& t : s->buf) {
          std::memset(t.raw(), 0, static_cast<size_t>(t.bytes()));
          device_->HostWrote(t.ref());
        }
      }
    }
    Progress progress(absl::StrCat("epoch ", epoch + 1), feeder.num_batches(), batch,
                      config.progress);
    EpochReport report;
    report.epoch = epoch;
    double loss_sum = 0, correct = 0;
    int64_t b = first_batch;
    for (; b < feeder.num_batches(); ++b) {
      if (config.stop != nullptr && config.stop->load()) {
        stats.interrupted = true;
        break;
      }
      if (config.max_steps >= 0 && stats.steps >= config.max_steps) break;
      if (resident) {
        SetScalar(hyper[start_index], static_cast<double>(b * batch));
      } else {
        FillImages(feeder, b, *d.images, d.labels->data<int32_t>());
      }
      if (config.schedule) {
        report.lr = config.schedule->At(step_, epoch);
        SetScalar(hyper[lr_index], report.lr);
      } else if (lr_index >= 0) {
        report.lr = ScalarValue(hyper[lr_index]);
      }
      if (step_index >= 0) SetScalar(hyper[step_index], static_cast<double>(step_ + 1));
      KILN_RETURN_IF_ERROR(train_->Run(in[current_], out[current_]));
      const bool log = config.log_every > 0 && b % config.log_every == 0;
      double loss = 0;
      if (!resident || log) {
        if (resident) KILN_RETURN_IF_ERROR(device_->ToHost(scalars[0].ref()));
        loss = ScalarValue(scalars[0]);
        // Checked on the host: the compiled code assumes no NaNs and may fold a check away.
        if (!std::isfinite(loss)) {
          progress.Finish();
          return diverged(
              loss, absl::StrCat("at step ", step_ + 1, " (epoch ", epoch + 1, ", batch ", b, ")"));
        }
        last_finite = loss;
        last_finite_step = step_ + 1;
      }
      current_ = 1 - current_;
      ++step_;
      batch_in_epoch_ = b + 1;
      if (!resident) {
        loss_sum += loss;
        size_t si = 1;
        for (const ArgSpec& a : sig.outputs) {
          if (a.role == ArgRole::kMetric) stats.metric_totals[a.name] += ScalarValue(scalars[si++]);
        }
        if (correct_index >= 0) correct += ScalarValue(scalars[correct_index]);
      }
      if (log) {
        stats.logged.push_back({epoch, b, step_, loss, report.lr});
        if (config.on_log) config.on_log(stats.logged.back());
        std::printf("epoch_id: %d, batch_id: %lld, loss is: %.6f\n", epoch,
                    static_cast<long long>(b), loss);
        std::fflush(stdout);
      }
      ++stats.steps;
      stats.images += batch;
      progress.Update(b + 1);
    }
    if (resident) {  // the epoch's sums, read back once
      for (Slot* s : sums) {
        KILN_RETURN_IF_ERROR(device_->ToHost(s->buf[current_].ref()));
        const double v = ScalarValue(s->buf[current_]);
        const std::string name = s->name.substr(std::strlen(kSumPrefix));
        if (name == "loss") {
          loss_sum = v;
          if (!std::isfinite(v)) {
            progress.Finish();
            return diverged(v, absl::StrCat("summed over epoch ", epoch + 1));
          }
        } else {
          stats.metric_totals[name] += v;
          if (name == "correct") correct = v;
        }
      }
    }
    progress.Finish();
    stats.seconds += Seconds(epoch_start);
    const int64_t taken = b - first_batch;
    report.mean_loss = taken > 0 ? loss_sum / static_cast<double>(taken) : 0;
    if (correct_index >= 0 && taken > 0)
      report.train_accuracy = correct / static_cast<double>(taken * batch);
    const bool complete = b == feeder.num_batches();
    if (complete) {
      ++epoch_;
      batch_in_epoch_ = 0;
    }
    if (stats.interrupted) break;
    if (config.validation != nullptr) {
      KILN_ASSIGN_OR_RETURN(EvalResult v, Evaluate(*config.validation));
      report.val_accuracy = v.accuracy();
      report.val_loss = v.mean_loss;
      if (report.val_accuracy > best_val) {
        best_val = report.val_accuracy;
        stats.best_epoch = epoch;
      }
    }
    report.seconds = Seconds(epoch_start);
    stats.epochs.push_back(report);
    if (config.on_epoch && complete) {
      absl::Status st = config.on_epoch(report);
      if (absl::IsCancelled(st)) break;  // the callback's way to end training early
      KILN_RETURN_IF_ERROR(st);
    }
    if (config.max_steps >= 0 && stats.steps >= config.max_steps) break;
  }
  return stats;
}

absl::StatusOr<EvalResult> Trainer::Evaluate(const Dataset& data) {
  if (!initialized_) return absl::FailedPreconditionError("call Initialize() before Evaluate()");
  if (eval_ == nullptr) return absl::FailedPreconditionError("Trainer has no evaluation step");
  const Signature& sig = eval_->signature();
  DataBuffers d;
  KILN_RETURN_IF_ERROR(MakeDataBuffers(sig, data, d));
  const int64_t batch = d.images->shape()[0];
  int pred_index = sig.FindOutput(ArgRole::kOutput, "prediction");
  if (pred_index < 0 || sig.outputs[pred_index].type != ScalarType::kI32) {
    return absl::InvalidArgumentError("the evaluation step has no int32 output named 'prediction'");
  }
  std::vector<Tensor> outputs;
  std::vector<TensorRef> in, out;
  KILN_RETURN_IF_ERROR(BindEval(d.tensors, outputs, in, out));
  std::vector<int32_t> scratch_labels(static_cast<size_t>(batch));
  const int loss_index = sig.FindOutput(ArgRole::kOutput, "loss");
  double loss_sum = 0;

  EvalResult r;
  int classes = 1;
  for (int32_t l : data.labels) classes = std::max(classes, l + 1);
  r.confusion.assign(static_cast<size_t>(classes),
                     std::vector<int64_t>(static_cast<size_t>(classes), 0));
  BatchFeeder feeder(data, batch, 0, /*shuffle=*/false, /*drop_last=*/false);
  auto t0 = std::chrono::steady_clock::now();
  int32_t* labels = d.labels ? d.labels->data<int32_t>() : scratch_labels.data();
  for (int64_t b = 0; b < feeder.num_batches(); ++b) {
    int64_t real = FillImages(feeder, b, *d.images, labels);
    KILN_RETURN_IF_ERROR(eval_->Run(in, out));
    const int32_t* pred = outputs[pred_index].data<int32_t>();
    for (int64_t row = 0; loss_index >= 0 && row < real; ++row) {
      loss_sum += outputs[loss_index].type() == ScalarType::kF64
                      ? outputs[loss_index].data<double>()[row]
                      : outputs[loss_index].data<float>()[row];
    }
    for (int64_t row = 0; row < real; ++row) {
      int32_t truth = labels[row];
      int32_t p = pred[row];
      ++r.count;
      if (p == truth) ++r.correct;
      if (p >= 0 && p < classes) ++r.confusion[truth][p];
    }
  }
  r.seconds = Seconds(t0);
  if (loss_index >= 0 && r.count > 0) r.mean_loss = loss_sum / static_cast<double>(r.count);
  return r;
}

absl::Status Trainer::BindEval(std::vector<Tensor>& data, std::vector<Tensor>& outputs,
                               std::vector<TensorRef>& in, std::vector<TensorRef>& out) const {
  const Signature& sig = eval_->signature();
  for (const ArgSpec& a : sig.outputs) outputs.emplace_back(a.type, a.shape);
  size_t data_i = 0;
  for (const ArgSpec& a : sig.inputs) {
    if (a.role == ArgRole::kData) {
      in.push_back(data[data_i++].ref());
    } else {
      const Slot* s = FindSlot(a.name);
      if (s == nullptr) return absl::InternalError(absl::StrCat("no buffer for '", a.name, "'"));
      in.push_back(s->buf[current_].ref());
    }
  }
  for (Tensor& t : outputs) out.push_back(t.ref());
  return absl::OkStatus();
}

absl::StatusOr<int32_t> Trainer::Predict(const std::vector<float>& example) {
  if (!initialized_)
    return absl::FailedPreconditionError("call Initialize() or Load() before Predict()");
  if (eval_ == nullptr) return absl::FailedPreconditionError("Trainer has no evaluation step");
  for (const ArgSpec& a : eval_->signature().inputs) {
    if (a.role != ArgRole::kData || a.type == ScalarType::kI32 || a.shape.empty()) continue;
    const int64_t per_example = NumElements(a.shape) / a.shape[0];
    if (static_cast<int64_t>(example.size()) != per_example) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Predict: expected ", per_example, " values per example (the evaluation step's input '",
          a.name, "' is ", ShapeString(a.shape), "), got ", example.size()));
    }
    break;
  }
  Dataset one;
  one.count = 1;
  one.example_shape = {static_cast<int64_t>(example.size())};
  one.labels = {0};
  const Signature& sig = eval_->signature();
  DataBuffers d;
  one.pixels.resize(example.size());
  KILN_RETURN_IF_ERROR(MakeDataBuffers(sig, one, d));
  if (d.images->type() == ScalarType::kU8) {  // back to the pixels the step normalizes itself
    uint8_t* px = d.images->data<uint8_t>();
    for (size_t i = 0; i < example.size(); ++i) {
      px[i] = static_cast<uint8_t>(std::lround(std::clamp(example[i], 0.0f, 1.0f) * 255.0f));
    }
  } else {
    std::copy(example.begin(), example.end(), d.images->data<float>());
  }
  std::vector<Tensor> outputs;
  std::vector<TensorRef> in, out;
  KILN_RETURN_IF_ERROR(BindEval(d.tensors, outputs, in, out));
  KILN_RETURN_IF_ERROR(eval_->Run(in, out));
  return outputs[sig.FindOutput(ArgRole::kOutput, "prediction")].data<int32_t>()[0];
}

absl::Status Trainer::Save(const std::string& path,
                           const std::map<std::string, std::string>& metadata) const {
  if (!initialized_) return absl::FailedPreconditionError("nothing to save: not initialized");
  KILN_RETURN_IF_ERROR(SlotsToHost());
  std::vector<std::pair<std::string, const Tensor*>> tensors;
  for (const Slot& s : slots_) {
    // The per-epoch sums of resident training are scratch, not model state.
    if (s.name.rfind(kSumPrefix, 0) == 0) continue;
    tensors.push_back({s.name, &s.buf[current_]});
  }
  std::map<std::string, std::string> meta = metadata;
  meta["format"] = "kiln-checkpoint-1";
  meta["step"] = absl::StrCat(step_);
  meta["epoch"] = absl::StrCat(epoch_);
  meta["batch"] = absl::StrCat(batch_in_epoch_);
  meta["seed"] = absl::StrCat(seed_);
  return SaveSafetensors(path, tensors, meta);
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
  // State the file lacks keeps its current value: bring the host copies up to date first.
  KILN_RETURN_IF_ERROR(SlotsToHost());
  for (Slot& s : slots_) {
    if (s.role != ArgRole::kParam) continue;
    const Tensor* t = f.Find(s.name);
    const Tensor& dst = s.buf[current_];
    if (t == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": parameter '", s.name, "' is missing from the checkpoint"));
    }
    if (t->shape() != dst.shape() || t->type() != dst.type()) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": parameter '", s.name, "' expected ", ScalarTypeName(dst.type()),
          ShapeString(dst.shape()), ", got ", ScalarTypeName(t->type()), ShapeString(t->shape())));
    }
  }
  // Counters: absent in files written elsewhere (e.g. PyTorch weights), then left as they are.
  auto counter = [&](const char* key, auto* out) -> absl::Status {
    auto it = f.metadata.find(key);
    if (it == f.metadata.end()) return absl::OkStatus();
    if (!absl::SimpleAtoi(it->second, out)) {
      return absl::DataLossError(
          absl::StrCat(path, ": metadata \"", key, "\" is not a number: \"", it->second, "\""));
    }
    return absl::OkStatus();
  };
  int64_t step = step_, batch = 0;
  int epoch = epoch_;
  uint64_t seed = seed_;
  KILN_RETURN_IF_ERROR(counter("step", &step));
  KILN_RETURN_IF_ERROR(counter("epoch", &epoch));
  KILN_RETURN_IF_ERROR(counter("batch", &batch));  // absent before interrupted epochs existed
  KILN_RETURN_IF_ERROR(counter("seed", &seed));
  if (step < 0 || epoch < 0 || batch < 0) {
    return absl::DataLossError(absl::StrCat(path, ": negative step, epoch or batch counter"));
  }
  if (restore_counters) {
    step_ = step;
    epoch_ = epoch;
    batch_in_epoch_ = batch;
    seed_ = seed;
  }
  for (Slot& s : slots_) {
    const Tensor* t = f.Find(s.name);
    if (t == nullptr) continue;  // optimizer state may be absent (e.g. a different optimizer)
    if (t->shape() != s.buf[current_].shape() || t->type() != s.buf[current_].type()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": state '", s.name, "' has the wrong shape"));
    }
    std::memcpy(s.buf[current_].raw(), t->raw(), static_cast<size_t>(t->bytes()));
  }
  SlotsWritten();
  return absl::OkStatus();
}

const Tensor& Trainer::parameter(const std::string& name) const {
  const Slot* s = FindSlot(name);
  KILN_CHECK(s != nullptr);
  if (device_ != nullptr) {
    absl::Status st = device_->ToHost(s->buf[current_].ref());
    KILN_CHECK(st.ok());
  }
  return s->buf[current_];
}

std::vector<std::string> Trainer::parameter_names() const {
  std::vector<std::string> out;
  for (const Slot& s : slots_) {
    if (s.role == ArgRole::kParam) out.push_back(s.name);
  }
  return out;
}

}  // namespace kiln
