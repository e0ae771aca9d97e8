// The persistent compile cache: a step's native code, keyed by everything that decides it (the
// step graph with exact attributes, the signature, the target, the compile options, and a build id
// hashing Kiln's compiler sources and the Halide version). A miss compiles the Halide pipeline to
// an object, links it into a shared object with the system C compiler (`cc`, or $KILN_CC), seals it
// with a content hash and renames it into place (atomic: concurrent writers each write a private
// temporary file, the last rename wins, readers never see a partial file). A hit verifies the
// content hash, dlopens the file and checks the entry point's metadata against the signature; a
// corrupt or foreign file is reported on stderr and recompiled.
//
//   CompileOptions o;
//   o.cache_dir = kiln::DefaultCacheDir();   // $KILN_CACHE_DIR, else ~/.cache/kiln
//   auto step = kiln::CompileTrainStep(g, model, kiln::Adam(1e-3), o);
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "compiler/lower.h"
#include "runtime/executable.h"

namespace kiln {

extern const char kBuildId[];  // generated (cmake/build_id.cmake)

// $KILN_CACHE_DIR if set (an empty value disables the cache: returns ""), else
// $XDG_CACHE_HOME/kiln, else $HOME/.cache/kiln, else "".
std::string DefaultCacheDir();

// Hex key of a step: `material` is the caller's exact description of the step.
std::string CacheKey(const std::string& material);

struct CacheResult {
  std::unique_ptr<Executable> executable;
  bool hit = false;
  std::string path;
};

// The step stored under `key` in `dir`, loaded, if there is one that verifies; null otherwise (an
// unusable entry is reported on stderr if `report`, and left for CompileCached to replace). Needs
// no lowered step: a caller that knows the key looks it up before lowering.
std::unique_ptr<Executable> LoadCachedIfPresent(const Signature& sig, const Halide::Target& target,
                                                const std::string& dir, const std::string& key,
                                                bool report = true);

// Loads the step from `dir` or compiles and stores it. Falls back to the JIT (with a warning on
// stderr) where no shared object can be linked.
absl::StatusOr<CacheResult> CompileCached(LoweredStep step, Signature sig,
                                          const Halide::Target& target, const std::string& dir,
                                          const std::string& key);

}  // namespace kiln
