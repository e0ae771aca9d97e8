// A step compiled once with Halide's JIT and called once per training step.
//
//   absl::StatusOr<std::unique_ptr<kiln::Executable>> exe =
//       kiln::JitCompile(std::move(lowered), signature, target);
//   KILN_RETURN_IF_ERROR((*exe)->Run(inputs, outputs));
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "compiler/lower.h"
#include "runtime/executable.h"

namespace kiln {

absl::StatusOr<std::unique_ptr<Executable>> JitCompile(LoweredStep step, Signature signature,
                                                       const Halide::Target& target);

}  // namespace kiln
