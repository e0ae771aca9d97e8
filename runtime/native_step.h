// Steps compiled to native code before the process runs them: a Halide static library linked into
// an ahead-of-time training binary, or a shared object from the compile cache. Either way the step
// is Halide's `<name>_argv(void**)` entry point, called with halide_buffer_t views of the runtime's
// tensors; the runtime includes Halide's runtime header only and never links Halide.
//
//   auto exe = kiln::MakeNativeExecutable(sig, &kiln_train_argv, &kiln_train_metadata, nullptr);
//   auto cached = kiln::LoadCachedStep("/home/u/.cache/kiln/5f3a.so", sig);
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "runtime/executable.h"

struct halide_filter_metadata_t;
struct halide_type_t;

namespace kiln {

using NativeStepFn = int (*)(void**);
using NativeMetadataFn = const halide_filter_metadata_t* (*)();

// Halide's runtime type for a tensor element type (JIT and native steps share it).
halide_type_t HalideTypeOf(ScalarType t);

// The entry point every Kiln step is compiled with (`kiln_step_argv`, `kiln_step_metadata`).
inline constexpr char kNativeStepName[] = "kiln_step";

// Wraps a compiled step. The function's metadata (argument count, kinds, types, ranks) must match
// `sig` (inputs then outputs), else FailedPrecondition naming the first mismatch. `keepalive` is
// held for the executable's lifetime (e.g. the dlopen handle of a cached shared object).
absl::StatusOr<std::unique_ptr<Executable>> MakeNativeExecutable(Signature sig, NativeStepFn fn,
                                                                 NativeMetadataFn metadata,
                                                                 std::shared_ptr<void> keepalive,
                                                                 double compile_seconds = 0);

// Compile-cache files: a shared object followed by a 24-byte trailer (FNV-1a 64 content hash,
// length, magic). A file that is truncated, altered or not a Kiln cache file fails verification
// with DataLoss before it is ever mapped.
uint64_t ContentHash(const void* data, size_t size);
absl::Status SealCacheFile(const std::string& path);  // appends the trailer
absl::Status VerifyCacheFile(const std::string& path);

// Loads a cached Halide runtime (a sealed shared object) into the global symbol scope, once per
// process and path; cached steps are compiled without a runtime and bind to it.
absl::Status LoadHalideRuntime(const std::string& path);

// Verifies `path`, dlopens it privately and wraps its `kiln_step` entry point.
absl::StatusOr<std::unique_ptr<Executable>> LoadCachedStep(const std::string& path, Signature sig,
                                                           double compile_seconds = 0);

}  // namespace kiln
