#include "compiler/target.h"

#include <cpuid.h>

#include <cstdlib>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "runtime/cuda_device.h"

namespace kiln {

absl::StatusOr<TargetSpec> ParseTarget(const std::string& name) {
  TargetSpec t;
  std::string base = name;
  if (size_t colon = name.find(':'); colon != std::string::npos) {
    base = name.substr(0, colon);
    if (!absl::SimpleAtoi(name.substr(colon + 1), &t.cuda_capability) || t.cuda_capability < 30 ||
        t.cuda_capability > 999) {
      return absl::InvalidArgumentError(absl::StrCat("target '", name,
                                                     "': expected a CUDA capability such as "
                                                     "host-cuda:86 after the colon"));
    }
  }
  if (base == "host") {
  } else if (base == "portable") {
    t.portable = true;
  } else if (base == "host-cuda" || base == "cuda") {
    t.device = Device::kCuda;
  } else if (base == "portable-cuda") {
    t.device = Device::kCuda;
    t.portable = true;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown target '", name, "': expected host, portable, host-cuda or portable-cuda"));
  }
  if (t.cuda_capability != 0 && t.device != Device::kCuda) {
    return absl::InvalidArgumentError(
        absl::StrCat("target '", name, "': a capability only applies to CUDA targets"));
  }
  return t;
}

std::string TargetName(const TargetSpec& spec) {
  std::string s = spec.portable ? "portable" : "host";
  if (spec.device == Device::kCuda) {
    s = spec.portable ? "portable-cuda" : "host-cuda";
    if (spec.cuda_capability != 0) absl::StrAppend(&s, ":", spec.cuda_capability);
  }
  return s;
}

namespace {

Halide::Target::Feature CudaFeature(int capability) {
  using F = Halide::Target::Feature;
  const std::pair<int, F> flags[] = {{86, F::CUDACapability86}, {80, F::CUDACapability80},
                                     {75, F::CUDACapability75}, {70, F::CUDACapability70},
                                     {61, F::CUDACapability61}, {50, F::CUDACapability50},
                                     {35, F::CUDACapability35}, {32, F::CUDACapability32}};
  for (const auto& [cc, f] : flags) {
    if (capability >= cc) return f;
  }
  return F::CUDACapability30;
}

}  // namespace

absl::StatusOr<TargetSpec> ResolveTarget(const std::string& name, std::string* note) {
  const bool automatic = name == "auto";
  TargetSpec t;
  if (!automatic) {
    absl::StatusOr<TargetSpec> parsed = ParseTarget(name);
    if (!parsed.ok()) return parsed.status();
    t = *parsed;
    if (t.device == Device::kCpu) {
      *note = absl::StrCat("target ", TargetName(t));
      return t;
    }
  }
  absl::StatusOr<CudaDevice> dev = QueryCudaDevice();
  if (!dev.ok()) {
    if (!automatic) return dev.status();
    *note = absl::StrCat("target host (auto: ", dev.status().message(), ")");
    return TargetSpec{};
  }
  t.device = Device::kCuda;
  if (t.cuda_capability == 0) t.cuda_capability = dev->capability;
  *note = absl::StrCat("target ", TargetName(t), automatic ? " (auto)" : "", " on ",
                       DescribeCudaDevice(*dev));
  return t;
}

bool CpuHasAvxVnni() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
  return (a & (1u << 4)) != 0;  // CPUID.(EAX=7, ECX=1):EAX bit 4
}

absl::StatusOr<Halide::Target> ToHalideTarget(const TargetSpec& spec) {
  Halide::Target host = Halide::get_jit_target_from_environment();
  // Halide 14 calls a CPU with AVX512-VNNI and AVX512-BF16 avx512_sapphirerapids, and code for that
  // feature may use the VEX-encoded AVX-VNNI dot product (vpdpwssd on ymm registers) that Sapphire
  // Rapids has and AMD Zen 4 does not: an illegal instruction in the int16 index arithmetic of
  // two op tests on a Zen 4 (2026-12-03). Where CPUID denies AVX-VNNI the feature is dropped; the
  // other AVX-512 features stay.
  if (host.has_feature(Halide::Target::AVX512_SapphireRapids) && !CpuHasAvxVnni()) {
    host = host.without_feature(Halide::Target::AVX512_SapphireRapids);
  }
  bool asan = false;
#ifdef KILN_SANITIZE
  // Generated code checks its own loads and stores against the sanitizer's shadow memory
  // (KILN_HALIDE_ASAN=0 leaves it out, to tell Halide's instrumentation from Kiln's code).
  const char* e = std::getenv("KILN_HALIDE_ASAN");
  asan = spec.halide_asan && (e == nullptr || std::string(e) != "0");
#endif
  if (asan) host = host.with_feature(Halide::Target::ASAN);
  Halide::Target t = host;
  if (spec.portable) {
    t = Halide::Target(host.os, host.arch, host.bits);
    if (host.arch == Halide::Target::X86) {
      t = t.with_feature(Halide::Target::SSE41)
              .with_feature(Halide::Target::AVX)
              .with_feature(Halide::Target::AVX2)
              .with_feature(Halide::Target::FMA)
              .with_feature(Halide::Target::F16C);
    }
    if (asan) t = t.with_feature(Halide::Target::ASAN);
  }
  bool asserts = spec.halide_asserts || spec.device != Device::kCpu;
#ifdef KILN_SANITIZE
  asserts = true;
#endif
  if (!asserts) t = t.with_feature(Halide::Target::NoAsserts);
  if (spec.device == Device::kCpu) {
    // Kiln calls a step with every buffer allocated, never to ask for bounds: without the
    // bounds-query branch the tutorial CNN's Adam step compiled in 1.88-1.96 s instead of
    // 2.04-2.14 s, LeNet-5's in 3.18-3.29 s instead of 3.60-3.73 s (mnist_* compile_s, 2026-12-04).
    t = t.with_feature(Halide::Target::NoBoundsQuery);
    // Halide 14 runs LLVM's loop vectorizer, interleaver and unroller over the loops it has
    // already vectorized and unrolled, unless told not to (Halide 15 turned them off by default).
    // Kiln's schedules vectorize and unroll what they need themselves (the matmul's tile vectors,
    // its matrix-vector partial sums, a [784, 1] weight's update, a 3-wide conv tap row), so they
    // are off. Interleaved runs (2026-12-04): the same step rates within noise (CNN 17.6k vs 17.8k
    // images/s, LeNet-5 57.6k vs 57.9k, ResNet 2,704 / 2,667 vs 2,549 / 2,667; ViT 6,174 / 6,039 vs
    // 6,258 / 6,160), and 14-37% less compilation: the CNN's Adam step 1.54 s instead of 1.90 s,
    // LeNet-5's 2.74 s instead of 3.19 s, their evaluation steps 0.62 s and 0.75 s instead of 0.91
    // and 1.19 s (mnist_* compile_s).
    t = t.with_feature(Halide::Target::DisableLLVMLoopOpt);
  }
  if (spec.device == Device::kCuda) {
    if (host.os != Halide::Target::Linux || host.arch != Halide::Target::X86 || host.bits != 64) {
      return absl::UnimplementedError(
          absl::StrCat("the CUDA target is built for x86-64 Linux hosts, not ", host.to_string()));
    }
    t = t.with_feature(Halide::Target::CUDA)
            .with_feature(
                CudaFeature(spec.cuda_capability ? spec.cuda_capability : kDefaultCudaCapability));
  }
  return t;
}

}  // namespace kiln
