// The manifest of an ahead-of-time compiled model: everything the runtime needs besides the
// compiled code itself - the two steps' signatures (argument names, roles, kinds and links, types,
// shapes, initializers), the batch sizes, the target the code was compiled for and the program's
// defaults. The generator writes it as JSON and embeds it in the binary; the binary parses and
// validates it at start-up (and checks it against each compiled function's own metadata).
//
//   std::string json = kiln::ManifestToJson(m);
//   absl::StatusOr<kiln::AotManifest> back = kiln::ParseManifest(json);
#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/driver.h"
#include "runtime/executable.h"
#include "runtime/segmented_step.h"

namespace kiln {

// Version 2: arguments carry their ArgKind and links (param, updates, sums; gradients their
// offset, optional). Version 1 manifests are refused with a message to rebuild: their meaning was
// in names.
inline constexpr int kManifestVersion = 2;

struct AotManifest {
  int version = kManifestVersion;
  std::string name;
  std::string target;     // Halide target string(s) the steps were compiled for
  std::string optimizer;  // for the log line (the update is compiled into the step)
  int64_t batch = 0, eval_batch = 0;
  DriverDefaults defaults;
  Signature train, eval;
  // A two-phase training step (CompileOptions::two_phase; JSON "step_form": "two_phase"): its
  // phases' signatures instead of `train` (JSON "train_gradient" and "train_update"), their entry
  // points AotProgram::train and AotProgram::update.
  bool two_phase = false;
  Signature train_gradient, train_update;
  // Steps compiled as several pipelines (JSON: the step's "segments"), by the step's key ("train",
  // "eval", "train_gradient", "train_update"); a step not here is one pipeline. Its entry points
  // are the segments' in order (AotStepEntries).
  std::map<std::string, SegmentPlan> segments;
};

std::string ManifestToJson(const AotManifest& m);

// Strict: another version, unknown roles, kinds or dtypes, links that do not fit (see
// Signature::Validate), missing fields, non-positive or overflowing shapes, a data input
// whose batch axis differs from the batch size, duplicate argument names, or more than 1 MiB of
// text are InvalidArgument naming the field.
absl::StatusOr<AotManifest> ParseManifest(absl::string_view json);

}  // namespace kiln
