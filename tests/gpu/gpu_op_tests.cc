// The GPU op tests, compiled ahead of time so they run where there is no Halide or LLVM (the GPU
// machine, through scripts/gpu_check.sh): every op case's forward pass and gradients run on the
// device and on the CPU from the same random inputs; outputs must agree within the tolerance.
//   gpu_op_tests [--filter=SUBSTRING] [--rtol=1e-3] [--atol=1e-4] [--cpu_only]
// --cpu_only checks the harness without a device: the CPU kernels twice, bit-identical and finite.
// Exit status 0 when every case passed, 1 otherwise (or when there is no device).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "base/tensor.h"
#include "runtime/cuda_device.h"
#include "runtime/dataset.h"
#include "runtime/native_step.h"
#include "tests/gpu/gpu_ops.h"

ABSL_FLAG(std::string, filter, "", "only cases whose name contains this");
ABSL_FLAG(double, rtol, 1e-3, "relative tolerance (float outputs)");
ABSL_FLAG(double, atol, 1e-4, "absolute tolerance (float outputs)");
ABSL_FLAG(bool, cpu_only, false, "no device: run the CPU kernels twice (checks the harness)");

namespace {

using kiln::ScalarType;
using kiln::Tensor;
using kiln::TensorRef;

double At(const Tensor& t, int64_t i) {
  switch (t.type()) {
    case ScalarType::kF32:
      return t.data<float>()[i];
    case ScalarType::kF64:
      return t.data<double>()[i];
    case ScalarType::kI32:
      return t.data<int32_t>()[i];
    case ScalarType::kU8:
      return t.data<uint8_t>()[i];
  }
  return 0;
}

void Set(Tensor& t, int64_t i, double v) {
  switch (t.type()) {
    case ScalarType::kF32:
      t.data<float>()[i] = static_cast<float>(v);
      break;
    case ScalarType::kF64:
      t.data<double>()[i] = v;
      break;
    case ScalarType::kI32:
      t.data<int32_t>()[i] = static_cast<int32_t>(std::floor(v));
      break;
    case ScalarType::kU8:
      t.data<uint8_t>()[i] = static_cast<uint8_t>(std::floor(v));
      break;
  }
}

// Runs `c` once on `exe` from inputs made with `seed`; the outputs.
absl::StatusOr<std::vector<Tensor>> RunCase(kiln::Executable& exe, const GpuOpCase& c,
                                            uint64_t seed) {
  kiln::Rng rng(seed);
  std::vector<Tensor> in, out;
  std::vector<TensorRef> in_refs, out_refs;
  for (const GpuOpArg& a : c.args) {
    Tensor t(a.type, a.shape);
    if (!a.output) {
      for (int64_t i = 0; i < kiln::NumElements(a.shape); ++i) {
        Set(t, i, a.lo + (a.hi - a.lo) * rng.Uniform());
      }
    }
    (a.output ? out : in).push_back(std::move(t));
  }
  for (Tensor& t : in) in_refs.push_back(t.ref());
  for (Tensor& t : out) out_refs.push_back(t.ref());
  if (absl::Status s = exe.Run(in_refs, out_refs); !s.ok()) return s;
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const bool cpu_only = absl::GetFlag(FLAGS_cpu_only);
  if (!cpu_only) {
    absl::StatusOr<kiln::CudaDevice> dev = kiln::QueryCudaDevice();
    if (!dev.ok()) {
      std::fprintf(stderr, "error: %s\n", std::string(dev.status().ToString()).c_str());
      return 1;
    }
    std::printf("device: %s\n", kiln::DescribeCudaDevice(*dev).c_str());
  }
  const double rtol = absl::GetFlag(FLAGS_rtol), atol = absl::GetFlag(FLAGS_atol);
  int passed = 0, failed = 0, index = 0;
  for (const GpuOpCase& c : GpuOpCases()) {
    const uint64_t seed = 1000 + static_cast<uint64_t>(index++);
    if (std::string(c.name).find(absl::GetFlag(FLAGS_filter)) == std::string::npos) continue;
    kiln::Signature sig;
    for (const GpuOpArg& a : c.args) {
      kiln::ArgSpec s{
          a.name, a.output ? kiln::ArgRole::kOutput : kiln::ArgRole::kData, a.type, a.shape, {}};
      (a.output ? sig.outputs : sig.inputs).push_back(s);
    }
    auto cpu = kiln::MakeNativeExecutable(sig, c.cpu, c.cpu_metadata, nullptr);
    auto other = cpu_only ? kiln::MakeNativeExecutable(sig, c.cpu, c.cpu_metadata, nullptr)
                          : kiln::MakeNativeExecutable(sig, c.gpu, c.gpu_metadata, nullptr);
    std::string problem;
    if (!cpu.ok() || !other.ok()) {
      problem = std::string((cpu.ok() ? other.status() : cpu.status()).message());
    } else if (!cpu_only && !(*other)->on_device()) {
      problem = "the CUDA kernel does not report a device target";
    }
    double worst = 0;
    if (problem.empty()) {
      auto want = RunCase(**cpu, c, seed);
      auto got = RunCase(**other, c, seed);
      if (!want.ok() || !got.ok()) {
        problem = std::string((want.ok() ? got.status() : want.status()).message());
      }
      for (size_t o = 0; problem.empty() && o < sig.outputs.size(); ++o) {
        const Tensor& w = (*want)[o];
        const Tensor& g = (*got)[o];
        const bool exact = cpu_only || w.type() == ScalarType::kI32 || w.type() == ScalarType::kU8;
        for (int64_t i = 0; i < kiln::NumElements(w.shape()); ++i) {
          const double a = At(g, i), b = At(w, i);
          const double diff = std::fabs(a - b);
          worst = std::max(worst, diff);
          if (!std::isfinite(a) || (exact ? diff != 0 : diff > atol + rtol * std::fabs(b))) {
            problem = absl::StrCat("output ", sig.outputs[o].name, " element ", i, ": ",
                                   cpu_only ? "second run " : "gpu ", a, ", cpu ", b);
            break;
          }
        }
      }
    }
    if (problem.empty()) {
      ++passed;
      std::printf("  ok   %-36s max |diff| %.3g\n", c.name, worst);
    } else {
      ++failed;
      std::printf("  FAIL %-36s %s\n", c.name, problem.c_str());
    }
    std::fflush(stdout);  // a case that kills the process leaves the lines before it
  }
  std::printf("GPU OP TESTS (%s): %d passed, %d failed\n", cpu_only ? "cpu only" : "device", passed,
              failed);
  return failed == 0 && passed > 0 ? 0 : 1;
}
