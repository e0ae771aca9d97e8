// Where a step runs: the host CPU (its SIMD as detected, AVX2/AVX-512 here), a portable x86-64
// baseline, or an NVIDIA GPU through Halide's CUDA backend (host code for the host CPU, kernels as
// PTX for a CUDA capability; the driver JIT-compiles the PTX for newer chips).
//
//   absl::StatusOr<kiln::TargetSpec> t = kiln::ParseTarget("host-cuda");
//   absl::StatusOr<Halide::Target> ht = kiln::ToHalideTarget(*t);
#pragma once

#include <string>

#include "Halide.h"
#include "absl/status/statusor.h"

namespace kiln {

enum class Device { kCpu, kCuda };

// Halide 14's highest CUDA capability flag; newer devices get PTX for it.
inline constexpr int kMaxCudaCapability = 86;
// Without a device to ask (building AOT binaries, compile-only tests): PTX for Volta (7.0) and
// every later chip.
inline constexpr int kDefaultCudaCapability = 70;

struct TargetSpec {
  Device device = Device::kCpu;
  // Restrict the CPU features to a portable baseline (x86-64 AVX2 + FMA) instead of the host's.
  bool portable = false;
  // CUDA: the device's compute capability as major*10+minor (e.g. 90 for an H100); 0 means
  // kDefaultCudaCapability. Mapped to the highest Halide flag not above it.
  int cuda_capability = 0;
  // Sanitizer builds only (KILN_SANITIZE): compile the generated code with Halide's `asan`
  // feature, as every step is there unless KILN_HALIDE_ASAN=0. False leaves it out of this one
  // step: Halide 14 miscompiles some strided loads under that feature (docs/RELIABILITY.md).
  // No effect in other builds.
  bool halide_asan = true;
  // Keep Halide's run-time checks in CPU code: each buffer argument's type, dimensions, shape
  // and strides against the pipeline's constraints, the region it reads against its bounds, and
  // allocation results. Off by default: Kiln checks every argument before the call
  // (CheckArguments: count, type, shape, non-null) and passes dense buffers built from the
  // signature, and the checks were about 40% of the tutorial CNN's Adam step compile (one assert
  // block per argument; 4.99-5.88 s with them, 2.95-3.59 s without, 2026-12-03). The op tests
  // keep them, so a lowering that reads outside an input fails there. Always on for CUDA (device
  // errors come back through them) and in sanitizer builds.
  bool halide_asserts = false;
};

// "host", "portable", "host-cuda" (or "cuda"), "portable-cuda"; InvalidArgument otherwise.
absl::StatusOr<TargetSpec> ParseTarget(const std::string& name);
// The name ParseTarget reads back ("host-cuda"), with the capability when set ("host-cuda:86").
std::string TargetName(const TargetSpec& spec);

// The host's features (HL_JIT_TARGET may add some, e.g. host-profile), restricted per `spec`;
// avx512_sapphirerapids only where the CPU has AVX-VNNI (CpuHasAvxVnni); no_asserts on CPUs unless
// spec.halide_asserts.
absl::StatusOr<Halide::Target> ToHalideTarget(const TargetSpec& spec);

// Whether this CPU has the VEX-encoded AVX-VNNI instructions (Intel since Alder Lake and Sapphire
// Rapids; not AMD Zen 4, which has only their AVX-512 form).
bool CpuHasAvxVnni();

// A target name for a program about to run here: as ParseTarget, plus "auto" (host-cuda when a
// CUDA device answers, else host). CUDA targets ask the device (runtime/cuda_device.h) and take
// its capability unless the name gives one; no device gives Unavailable with the reason.
// `note` receives one line saying what was chosen and why.
absl::StatusOr<TargetSpec> ResolveTarget(const std::string& name, std::string* note);

}  // namespace kiln
