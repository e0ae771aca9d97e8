// The command-line training program shared by the JIT examples (examples/example_main.cc) and the
// ahead-of-time compiled training binaries (runtime/aot_main.cc): data loading, the training loop
// with checkpoints and resumption, the loss curve, prediction of one image file, test accuracy and
// the closing RESULT line, given two compiled steps. Runtime only: it never sees Halide or the
// compiler, so AOT binaries link it without either.
//
//   kiln::SetDriverDefaults({.name = "mnist_cnn", .epochs = 5, .lr = 2e-3, ...});
//   kiln::ParseDriverCommandLine(argc, argv, usage, {"example_main"});
//   absl::StatusOr<kiln::DriverData> data = kiln::LoadDriverData();
//   ... compile or load the two steps ...
//   return kiln::RunDriver(info, *data, train_step.get(), eval_step.get());
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"
#include "runtime/dataset.h"
#include "runtime/executable.h"

ABSL_DECLARE_FLAG(double, lr);  // the optimizer's default learning rate reads it

namespace kiln {

struct DriverDefaults {
  std::string name;  // program name: default checkpoint and plot names, RESULT line
  int epochs = 1;
  double lr = 0.001;
  std::string lr_schedule = "constant";
  int random_shift = 0;
  int64_t log_every = 1000;
  std::string predict;  // default --predict image ("" for none)
};

// Sets the defaults of the shared flags (before parsing).
void SetDriverDefaults(const DriverDefaults& d);

// Parses argv with absl flags; --help lists the flags defined in files whose path contains one of
// `flag_files` (plus the driver's own). Exits on --help or an unknown flag.
void ParseDriverCommandLine(int argc, char** argv, const std::string& usage,
                            const std::vector<std::string>& flag_files);

struct DriverData {
  Dataset train, validation, test;  // validation is empty unless --validation
};
// MNIST from --data_dir, the sample shown, and the --validation hold-out split off.
absl::StatusOr<DriverData> LoadDriverData();

struct DriverInfo {
  std::string name;
  std::string optimizer;  // for the log line
  int64_t batch = 0;      // the training step's batch size
  double compile_s = 0;   // reported on the RESULT line (0 when precompiled)
};

// Trains (unless --epochs is reached or --eval_only), saves, plots, predicts and evaluates. Returns
// the process exit code: 0, or 1 on any error (printed as "error: ...") or when the test accuracy
// is below --min_accuracy.
int RunDriver(const DriverInfo& info, DriverData& data, Executable* train, Executable* eval);

// Prints "error: <status>" to stderr and returns 1.
int DriverFail(const absl::Status& s);

}  // namespace kiln
