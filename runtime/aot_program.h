// What an AOT training binary is built around: its manifest (JSON text, runtime/manifest.h) and
// the entry points of its two compiled steps. The generated NAME_program.cc defines
// kKilnAotProgram; runtime/aot_main.cc runs it.
#pragma once

#include "HalideRuntime.h"
#include "runtime/native_step.h"

namespace kiln {

struct AotProgram {
  const char* manifest;
  NativeStepFn train;
  NativeMetadataFn train_metadata;
  NativeStepFn eval;
  NativeMetadataFn eval_metadata;
};

}  // namespace kiln

extern const kiln::AotProgram kKilnAotProgram;
