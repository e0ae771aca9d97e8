#include "compiler/target.h"

#include <cstdlib>
#include <string>

namespace kiln {

absl::StatusOr<Halide::Target> ToHalideTarget(const TargetSpec& spec) {
  if (spec.device == Device::kCuda) {
    return absl::UnimplementedError(
        "the CUDA target has no schedules yet: compile for the CPU (--target=host)");
  }
  Halide::Target host = Halide::get_jit_target_from_environment();
#ifdef KILN_SANITIZE
  // Generated code checks its own loads and stores against the sanitizer's shadow memory
  // (KILN_HALIDE_ASAN=0 leaves it out, to tell Halide's instrumentation from Kiln's code).
  if (const char* e = std::getenv("KILN_HALIDE_ASAN"); e == nullptr || std::string(e) != "0") {
    host = host.with_feature(Halide::Target::ASAN);
  }
#endif
  if (!spec.portable) return host;
  Halide::Target t(host.os, host.arch, host.bits);
  if (host.arch == Halide::Target::X86) {
    t = t.with_feature(Halide::Target::SSE41)
            .with_feature(Halide::Target::AVX)
            .with_feature(Halide::Target::AVX2)
            .with_feature(Halide::Target::FMA)
            .with_feature(Halide::Target::F16C);
  }
#ifdef KILN_SANITIZE
  t = t.with_feature(Halide::Target::ASAN);
#endif
  return t;
}

}  // namespace kiln
