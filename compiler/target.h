// Where a step runs. CPU (the host's SIMD as detected, AVX2/AVX-512 here) is implemented; CUDA
// has its place here and answers Unimplemented until its schedules exist.
//
//   kiln::TargetSpec t;                       // host CPU
//   absl::StatusOr<Halide::Target> ht = kiln::ToHalideTarget(t);
#pragma once

#include <string>

#include "Halide.h"
#include "absl/status/statusor.h"

namespace kiln {

enum class Device { kCpu, kCuda };

struct TargetSpec {
  Device device = Device::kCpu;
  // Restrict the CPU features to a portable baseline (x86-64 AVX2 + FMA) instead of the host's.
  bool portable = false;
};

absl::StatusOr<Halide::Target> ToHalideTarget(const TargetSpec& spec);

}  // namespace kiln
