// The command-line training program shared by the JIT examples (examples/example_main.cc) and the
// ahead-of-time compiled training binaries (runtime/aot_main.cc): flags parsed once into
// DriverOptions and checked before anything is compiled, data loading, the training loop with
// checkpoints, resumption and Ctrl-C, the loss curve, prediction of one image file, test accuracy
// and the closing RESULT line, given two compiled steps. Runtime only: it never sees Halide or
// the compiler, so AOT binaries link it without either.
//
//   kiln::DriverOptions o = kiln::ParseDriverCommandLine(argc, argv, usage, {"my_main"},
//                                                        {.name = "mnist_cnn", .epochs = 5});
//   absl::StatusOr<kiln::DriverData> data = kiln::LoadDriverData(o);
//   if (absl::Status s = kiln::ValidateDriverOptions(o, *data, batch); !s.ok()) ...
//   ... compile or load the two steps ...
//   return kiln::RunDriver(o, info, *data, train_step.get(), eval_step.get());
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/communicator.h"
#include "runtime/dataset.h"
#include "runtime/executable.h"

namespace kiln {

// A program's defaults for the shared flags (the command line overrides them).
struct DriverDefaults {
  std::string name;  // program name: default checkpoint and plot names, RESULT line
  int epochs = 1;
  double lr = 0.001;
  std::string lr_schedule = "constant";
  int random_shift = 0;
  int64_t log_every = 1000;
  std::string predict;  // default --predict image ("" for none)
};

// Every shared flag, parsed once (`--help` describes each).
struct DriverOptions {
  std::string name;
  std::string data_dir = "data/mnist";
  int epochs = 1;  // in total, counting the epochs of a --resume'd checkpoint
  bool eval_only = false;
  int64_t max_steps = -1;
  double lr = 0.001;
  std::string lr_schedule = "constant";
  int random_shift = 0;
  int64_t validation = 0;
  std::string checkpoint, resume;
  uint64_t seed = 1;
  int64_t log_every = 1000;
  double min_accuracy = 0, target_accuracy = 0;
  std::string save;            // empty: do not save
  bool save_explicit = false;  // --save was given on the command line
  std::string load, import, import_map;
  std::string predict;
  bool invert = false;
  std::string plot;      // prefix of the plots; empty: none
  std::string log_json;  // JSON lines of every logged step and every epoch; empty: none
  bool progress = true;
  double collective_timeout = 60;  // data-parallel: seconds before a stuck collective ends the job
};

// A flag of the JIT examples that an AOT binary fixes at build time: naming it on the command line
// is refused with `why`.
struct CompiledInFlag {
  std::string name;  // e.g. "batch_size"
  std::string why;   // e.g. "the training batch is compiled into this binary (64)"
};

// Parses argv: the shared flags into the returned options; the program's own flags (defined in
// files whose path contains one of `flag_files`) stay in their absl flags for the caller. On
// --help prints the flags and exits 0; on an unknown flag (naming the nearest known one), a
// `compiled_in` flag or a stray positional argument prints an error and exits 1.
DriverOptions ParseDriverCommandLine(int argc, char** argv, const std::string& usage,
                                     const std::vector<std::string>& flag_files,
                                     const DriverDefaults& defaults,
                                     const std::vector<CompiledInFlag>& compiled_in = {});

struct DriverData {
  Dataset train, validation, test;  // validation is empty unless --validation
};
// MNIST from --data_dir, the sample shown, and the --validation hold-out split off.
absl::StatusOr<DriverData> LoadDriverData(const DriverOptions& options);

// Everything that can be checked before a step is compiled or a batch trained, with errors that
// name the flag and its allowed range: numbers in range (epochs, learning rate, schedule and its
// warm-up against the run's length, random shift on 2-D images only, batch no larger than the
// training set, accuracies in [0, 1]), every input file readable (--load, --resume, --import,
// --import_map, --predict), every output directory present (--save, --checkpoint, --plot,
// --log_json), and flags that contradict each other. `batch` is the training step's batch.
absl::Status ValidateDriverOptions(const DriverOptions& options, const DriverData& data,
                                   int64_t batch);

struct DriverInfo {
  std::string name;
  std::string optimizer;  // for the log line
  int64_t batch = 0;      // the training step's batch size
  double compile_s = 0;   // reported on the RESULT line (0 when precompiled)
};

// Data-parallel training: joins the job mpirun started (JoinJob; one process otherwise), gives
// each rank of the machine its share of the cores (ShareCores), and on ranks > 0 sends stdout to
// /dev/null and prefixes errors with "[rank r] ". Call it right after ParseDriverCommandLine; rank
// 0 prints the job's size and backend.
absl::StatusOr<std::unique_ptr<Communicator>> JoinDriverJob(const DriverOptions& options);
// Before compiling: what every rank must agree on (the program's own fields, e.g. the model's
// fingerprint and the optimizer, plus the shared flags that change the run) compared across the
// ranks (CheckSameOnEveryRank).
absl::Status CheckDriverJob(Communicator& comm, const DriverOptions& options,
                            std::vector<std::pair<std::string, std::string>> fields);
// On GPUs, before compiling: NCCL over the job's ranks, each on the GPU of its local rank (one
// rank per GPU), sharing its CUDA context with Halide (runtime/nccl.h). Null for one rank.
absl::StatusOr<std::unique_ptr<Communicator>> JoinDeviceCollectives(Communicator& host);
// The process's exit code; ends a job of several ranks at once (_exit) when `code` is not 0, so
// that no rank waits in MPI_Finalize for ranks stuck in a collective.
int FinishDriverJob(std::unique_ptr<Communicator> comm, int code);

// Trains (unless --epochs is reached or --eval_only), saves, plots, predicts and evaluates.
// Parameters are saved only by a run that trained, or that loaded them and was given --save
// explicitly; an untrained, unloaded model is never written. SIGINT or SIGTERM during training
// ends it after the current step, writes a checkpoint (--checkpoint, else
// <name>_interrupted.safetensors) that --resume continues bit-exactly, and exits with 130 (143
// for SIGTERM). Returns the process exit code: 0, or 1 on any error (printed as "error: ...") or
// when the test accuracy is below --min_accuracy.
// With `comm` of several ranks (JoinDriverJob) it trains data-parallel (Trainer::set_communicator;
// the training step must be two-phase): the global batch is ranks x info.batch, only rank 0
// writes files (checkpoints, --save, plots, --log_json) and prints, and the RESULT line's
// ranks=N says how many took part.
// `device_comm` (JoinDeviceCollectives) sums the gradients of steps that run on a GPU.
int RunDriver(const DriverOptions& options, const DriverInfo& info, DriverData& data,
              Executable* train, Executable* eval, Communicator* comm = nullptr,
              Communicator* device_comm = nullptr);

// Prints "error: <status>" to stderr (after "[rank r] " on ranks > 0 of a job) and returns 1.
int DriverFail(const absl::Status& s);

}  // namespace kiln
