// What an AOT training binary is built around: its manifest (JSON text, runtime/manifest.h) and
// the entry points of its compiled steps (training, evaluation; a two-phase training step has
// two). The generated NAME_program.cc defines
// kKilnAotProgram; runtime/aot_main.cc runs it.
#pragma once

#include "HalideRuntime.h"
#include "runtime/native_step.h"

namespace kiln {

struct AotProgram {
  const char* manifest;
  NativeStepFn train;  // a two-phase step (AotManifest::two_phase): its gradient phase
  NativeMetadataFn train_metadata;
  NativeStepFn eval;
  NativeMetadataFn eval_metadata;
  NativeStepFn update = nullptr;  // a two-phase step's update phase; null otherwise
  NativeMetadataFn update_metadata = nullptr;
};

}  // namespace kiln

extern const kiln::AotProgram kKilnAotProgram;
