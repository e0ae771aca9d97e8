// The training loop over compiled steps. The pieces it drives, each with one responsibility:
// ParameterStore (parameters and state, double-buffered, device copies), BindStepArgs (arguments
// by role and kind), BatchSource (host-fed or device-resident batches), EpochMeter (loss and
// metrics), EvaluateStep / PredictOne (evaluation), SaveCheckpoint / RestoreCheckpoint.
//
//   kiln::Trainer trainer(train_step.get(), eval_step.get());
//   KILN_RETURN_IF_ERROR(trainer.Initialize(/*seed=*/1));
//   absl::StatusOr<kiln::TrainStats> stats = trainer.Train(train_data, config);
//   absl::StatusOr<kiln::EvalResult> eval = trainer.Evaluate(test_data);
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/tensor.h"
#include "runtime/checkpoint.h"
#include "runtime/communicator.h"
#include "runtime/device_tensors.h"
#include "runtime/evaluator.h"
#include "runtime/executable.h"
#include "runtime/idx.h"
#include "runtime/parameter_store.h"
#include "runtime/safetensors.h"
#include "runtime/schedule.h"

namespace kiln {

struct EpochReport {
  int epoch = 0;               // 0-based, counted over the trainer's whole life (resumes too)
  double mean_loss = 0;        // mean training loss over the epoch's steps
  double train_accuracy = -1;  // from a "correct" metric of the step, if it has one
  double val_accuracy = -1;    // on TrainConfig::validation, if given
  double val_loss = -1;        // if the evaluation step has a per-example "loss" output
  double lr = 0;               // learning rate at the epoch's last step
  double seconds = 0;
};

struct LossPoint {
  int epoch;      // 0-based
  int64_t batch;  // 0-based, within the epoch
  int64_t step;   // 1-based training step over the trainer's life (this step's number)
  double loss;
  double lr = 0;  // the learning rate the step used
};

// Settings of one Trainer::Train call. Train refuses (InvalidArgument, naming the field and its
// allowed range) negative epochs, log_every or random_shift, a random_shift on examples that are
// not 2-D images, a batch larger than the data set, a learning rate (hyper["lr"] or the
// schedule's base) that is not finite and positive, and a warm-up longer than the run.
struct TrainConfig {
  int epochs = 1;                       // epochs to run in this call, from the trainer's epoch
  bool shuffle = true;                  // seeded by Initialize's seed and the epoch number
  int random_shift = 0;                 // augmentation: shift images by up to N pixels
  int64_t log_every = 1000;             // print the loss every N batches (0: never)
  std::map<std::string, double> hyper;  // overrides of the optimizer's defaults, e.g. {"lr", 0.1}
  std::optional<LrSchedule> schedule;   // if set, feeds "lr" every step
  const Dataset* validation = nullptr;  // evaluated after every epoch
  // Called after every epoch (e.g. to checkpoint); an error stops training and is returned,
  // except Cancelled, which ends training normally (e.g. a target accuracy was reached).
  std::function<absl::Status(const EpochReport&)> on_epoch;
  // Called for every logged step (every log_every batches), e.g. for a machine-readable log.
  std::function<void(const LossPoint&)> on_log;
  bool progress = true;    // progress bar on a terminal (plain lines otherwise)
  int64_t max_steps = -1;  // stop after this many steps in this call (tests)
  // Checked after every step: once true, training ends after that step and Train returns with
  // TrainStats::interrupted set; Save() then writes a checkpoint that resumes bit-exactly from
  // the next batch (e.g. a SIGINT handler sets it; see InstallStopSignals in runtime/driver.h).
  const std::atomic<bool>* stop = nullptr;

  // `epochs` epochs with no loss lines and no progress bar (tests, benchmarks).
  static TrainConfig Silent(int epochs) {
    TrainConfig c;
    c.epochs = epochs;
    c.log_every = 0;
    c.progress = false;
    return c;
  }
};

struct TrainStats {
  std::vector<LossPoint> logged;  // the tutorial's loss list (every log_every)
  std::vector<EpochReport> epochs;
  std::map<std::string, double> metric_totals;  // summed over all steps (e.g. "correct")
  int best_epoch = -1;                          // highest validation accuracy, if validating
  int64_t steps = 0;
  int64_t images = 0;
  bool interrupted = false;  // TrainConfig::stop ended training
  double seconds = 0;        // wall time inside the step loop
  // Data-parallel: the part of `seconds` spent in the step's collectives (the gradient allreduce,
  // the loss and metrics), waiting for the slowest rank included.
  double collective_seconds = 0;
  double images_per_second() const { return seconds > 0 ? images / seconds : 0; }
};

// Training (and evaluation) over compiled steps.
//
// Evaluating a saved checkpoint needs no training step:
//   kiln::Graph eg(kiln::Mode::kEval);
//   auto eval = kiln::CompileEvalStep(eg, MyModel(eg, /*batch=*/1000), {});
//   kiln::Trainer trainer(/*train=*/nullptr, eval->get());
//   KILN_RETURN_IF_ERROR(trainer.Load("model.safetensors"));   // Initialize() is implied
//   absl::StatusOr<kiln::EvalResult> r = trainer.Evaluate(test);
class Trainer {
 public:
  // Either step may be null (no training, or no evaluation). Both must name their parameters
  // alike.
  Trainer(Executable* train, Executable* eval);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Allocates and initializes parameters (seeded by name) and zeroes optimizer state; `seed`
  // also drives the per-epoch shuffle. Resets the step and epoch counters.
  absl::Status Initialize(uint64_t seed);
  // Trains config.epochs epochs from the current epoch counter. Stops with Aborted naming the
  // step and the last finite loss if the loss becomes NaN or infinite; the parameters are then
  // those before the diverging step.
  absl::StatusOr<TrainStats> Train(const Dataset& data, const TrainConfig& config);
  // Evaluates every example (the last partial batch included) through the eval step's
  // "prediction" output (int32 [batch]). FailedPrecondition before Initialize() or Load().
  absl::StatusOr<EvalResult> Evaluate(const Dataset& data);
  // Classifies one normalized example (example_size floats); InvalidArgument "expected N values
  // per example, got M" for another size.
  absl::StatusOr<int32_t> Predict(const std::vector<float>& example);

  // Parameters, optimizer state ("<param>/<slot>") and the counters (step, epoch, batch within
  // the epoch, seed: together with the parameters they determine the rest of the run) in
  // safetensors, atomically (a missing directory is NotFound naming `path`).
  absl::Status Save(const std::string& path,
                    const std::map<std::string, std::string>& metadata = {}) const;
  // Loads a checkpoint written by Save: every parameter must be present with its shape and dtype
  // (InvalidArgument names the first that is not); optimizer state and counters are restored when
  // present, so training resumes exactly where the checkpoint was taken.
  // With restore_counters=false only tensors are loaded (fine-tuning from saved weights: the
  // epoch and step counters and the seed stay as they are). Before Initialize(), Load
  // initializes first (with the file's seed when it has one), so evaluating a checkpoint is
  // construct, Load, Evaluate.
  absl::Status Load(const std::string& path, bool restore_counters = true);
  // The same from tensors already read (e.g. weights imported under a name map); `path` names
  // the source in errors.
  absl::Status LoadFrom(const SafetensorsFile& f, const std::string& path,
                        bool restore_counters = false);
  int64_t step() const { return counters_.step; }
  int epoch() const { return counters_.epoch; }
  // > 0: stopped inside an epoch, with this many of its batches taken.
  int64_t batch_in_epoch() const { return counters_.batch_in_epoch; }

  // Data-parallel training over the ranks of `comm` (runtime/communicator.h; null or one rank:
  // this process alone). Set it before Initialize. Then:
  //   - Initialize and Load broadcast rank 0's parameters, state and counters to every rank;
  //   - Train needs a two-phase step (CompileOptions::two_phase): each rank takes its slice of
  //     every global batch (ranks x the step's batch; the same seeded permutation everywhere),
  //     the gradient buffer is summed across the ranks between the phases and scaled by 1/ranks
  //     (grad_scale; one given in TrainConfig::hyper is divided by the ranks), so with the loss a
  //     mean over each rank's batch the update is that of one step over the global batch. The
  //     learning rate is the one for the global batch. Losses are averaged and metrics summed
  //     across the ranks every step (with TrainConfig::stop: training stops when any rank's is
  //     set), so every early exit is taken by all ranks at the same step;
  //   - batch norm: each rank normalizes with its own batch's statistics; the running statistics
  //     are averaged across the ranks at the end of every Train epoch (before its validation and
  //     on_epoch, and so before any checkpoint), so every rank then holds the same values;
  //   - Evaluate splits the data set into one contiguous part per rank and sums the counts: every
  //     rank returns the whole set's result;
  //   - Save writes only on rank 0 (other ranks return OK at once; no collective inside).
  // Every rank must make the same calls in the same order.
  void set_communicator(Communicator* comm) { comm_ = comm; }
  // On a GPU the gradients are summed on the device by `comm` (NcclCommunicator, one rank per
  // GPU, the same ranks as set_communicator's).
  void set_device_communicator(Communicator* comm) { device_comm_ = comm; }
  int rank() const { return comm_ ? comm_->rank() : 0; }
  int ranks() const { return comm_ ? comm_->size() : 1; }

  // Device residency. When a step runs on a GPU (Executable::on_device) the trainer keeps
  // parameters, optimizer state and, for a resident training step (kDataset inputs), the
  // training set, its permutation and the loss on the device, and copies values to the host
  // only to log, evaluate on the host, save or return them. With emulation (tests, before
  // Initialize) the same protocol runs on the CPU against stand-in device copies.
  void set_device_emulation(bool on) { emulate_device_ = on; }
  const DeviceTensors* device_tensors() const { return store_.device(); }

  // A parameter's or buffer's (e.g. "bn.running_mean") current value; the name must exist.
  const Tensor& parameter(const std::string& name) const;
  std::vector<std::string> parameter_names() const;

 private:
  struct Epoch;  // one epoch's loop state (trainer.cc)
  // The config's settings against the data and the step's batch (see TrainConfig).
  absl::Status CheckConfig(const TrainConfig& config, const Dataset& data, int64_t batch) const;
  // The batches of one epoch from the trainer's position in it; the report of what it did.
  absl::StatusOr<EpochReport> RunEpoch(Epoch& e, const TrainConfig& config, TrainStats& stats);
  absl::Status CheckInitialized(const char* call) const;
  // Data-parallel: rank 0's parameters, state and counters on every rank; the batch-norm running
  // statistics averaged across the ranks. No-ops for one rank.
  absl::Status SyncFromRankZero();
  absl::Status AverageBuffers();

  Executable* train_;
  Executable* eval_;
  Communicator* comm_ = nullptr;
  Communicator* device_comm_ = nullptr;
  bool emulate_device_ = false;
  ParameterStore store_;
  TrainingCounters counters_;
  bool initialized_ = false;
};

}  // namespace kiln
