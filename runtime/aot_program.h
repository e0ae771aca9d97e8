// What an AOT training binary is built around: its manifest (JSON text, runtime/manifest.h) and
// the entry points of its compiled steps (training, evaluation; a two-phase training step has
// two). A step compiled as several pipelines (the manifest's segments) has one entry point per
// segment, in order. The generated NAME_program.cc defines kKilnAotProgram; runtime/aot_main.cc
// runs it.
#pragma once

#include <memory>
#include <string>

#include "HalideRuntime.h"
#include "absl/status/statusor.h"
#include "runtime/manifest.h"
#include "runtime/native_step.h"

namespace kiln {

struct AotEntry {
  NativeStepFn fn;
  NativeMetadataFn metadata;
};

struct AotStepEntries {
  const AotEntry* entries = nullptr;
  int count = 0;
};

struct AotProgram {
  const char* manifest;
  AotStepEntries train;  // a two-phase step (AotManifest::two_phase): its gradient phase
  AotStepEntries eval;
  AotStepEntries update;  // a two-phase step's update phase; none otherwise
};

// The step `key` of the manifest ("train", "eval", "train_gradient", "train_update") with
// signature `sig`, over its entry points: one native step, or a SegmentedStep when the manifest
// cuts it into segments. FailedPrecondition when the entry points' count or metadata do not
// match the manifest.
absl::StatusOr<std::unique_ptr<Executable>> MakeAotStep(const AotManifest& m,
                                                        const std::string& key,
                                                        const Signature& sig,
                                                        AotStepEntries entries);

}  // namespace kiln

extern const kiln::AotProgram kKilnAotProgram;
