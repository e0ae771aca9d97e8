// A step compiled once with Halide's JIT and called once per training step.
//
//   absl::StatusOr<std::unique_ptr<kiln::Executable>> exe =
//       kiln::JitCompile(std::move(lowered), signature, target);
//   KILN_RETURN_IF_ERROR((*exe)->Run(inputs, outputs));
#pragma once

#include <memory>
#include <thread>

#include "absl/status/statusor.h"
#include "compiler/lower.h"
#include "runtime/executable.h"

namespace kiln {

absl::StatusOr<std::unique_ptr<Executable>> JitCompile(LoweredStep step, Signature signature,
                                                       const Halide::Target& target);

// Builds Halide's JIT runtime for a CPU `target` on a second thread while the caller prepares and
// compiles its first step. Halide builds that runtime once per process, inside the first JIT
// compilation, which otherwise waits for it (0.3-0.46 s of the first step's compile here). Only
// the first warm-up of a process starts a thread, and it shares no Func or Expr with the caller;
// the destructor waits for it, so no Halide work outlives the scope.
class JitRuntimeWarmup {
 public:
  explicit JitRuntimeWarmup(const Halide::Target& target);
  ~JitRuntimeWarmup();
  JitRuntimeWarmup(const JitRuntimeWarmup&) = delete;
  JitRuntimeWarmup& operator=(const JitRuntimeWarmup&) = delete;

 private:
  std::thread thread_;
};

}  // namespace kiln
