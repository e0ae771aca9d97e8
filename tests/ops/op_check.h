// The op test harness: one table entry per case checks, end to end,
//   - the shape rule (output dtype and shape against the naive reference) and its error case,
//   - the forward pass against a naive float64 loop (compiled in float64 and float32),
//   - the hand schedule against a plain all-compute_root schedule (float32),
//   - the VJP by finite differences along random directions in float64.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "compiler/autodiff.h"
#include "compiler/model.h"
#include "dsl/api.h"
#include "gtest/gtest.h"

namespace kiln::testing {

// A dense float64 array for naive references (row-major, outermost first).
struct Nd {
  Shape shape;
  std::vector<double> v;
  static Nd Zeros(Shape s);
  int64_t Offset(const std::vector<int64_t>& idx) const;
  double& operator[](const std::vector<int64_t>& idx) { return v[Offset(idx)]; }
  double operator[](const std::vector<int64_t>& idx) const { return v[Offset(idx)]; }
};
// Calls fn for every index of `shape` in row-major order.
void ForEachIndex(const Shape& shape, const std::function<void(const std::vector<int64_t>&)>& fn);
Nd Map(const Nd& x, const std::function<double(double)>& f);
Nd Zip(const Nd& a, const Nd& b, const std::function<double(double, double)>& f);  // broadcasting
Nd ReduceRef(const Nd& x, std::vector<int64_t> axes, bool keepdims, double init,
             const std::function<double(double, double)>& f);
Nd MatMulRef(const Nd& a, const Nd& b);
// y[i_0, ..., i_r] = x[j] with j[perm[k]] = i_k (the Transpose op's rule).
Nd TransposedRef(const Nd& x, const std::vector<int64_t>& perm);

struct InputSpec {
  Shape shape;
  DType dtype = DType::kFloat;
  double lo = -1, hi = 1;  // float values uniform in [lo, hi); int32 values uniform in [lo, hi)
  bool parameter = false;  // create with Graph::Parameter instead of Graph::Input
};

// Shorthands for the case tables: float input in [lo, hi), int32 input in [lo, hi), and a float
// input created as a parameter.
inline InputSpec F(Shape s, double lo = -1, double hi = 1) {
  return {std::move(s), DType::kFloat, lo, hi};
}
inline InputSpec I(Shape s, int lo, int hi) {
  return {std::move(s), DType::kInt32, double(lo), double(hi)};
}
inline InputSpec P(Shape s) { return {std::move(s), DType::kFloat, -1, 1, /*parameter=*/true}; }

struct OpCase {
  std::string name;
  std::vector<OpKind> covers;  // primitives this case exercises (the coverage test reads this)
  std::vector<InputSpec> inputs;
  std::function<Value(const std::vector<Value>&)> build;
  std::function<Nd(const std::vector<Nd>&)> reference;
  // Why the gradient is not checked (non-differentiable op); empty means it is checked.
  std::string no_gradient;
  // Shape-rule error: builds a bad graph; the first error must contain `error`.
  std::function<Value(Graph&)> bad;
  std::string error;
  // Sanitizer builds: why this case's pipelines are compiled without Halide's `asan` feature
  // (TargetSpec::halide_asan; Kiln's C++ stays under ASan and UBSan). Empty: with it, like every
  // other case. Only for a fault of Halide's own, shown by a standalone program in tests/halide/.
  std::string without_halide_asan;
  // The float32 forward check's tolerance (relative, absolute) against the float64 reference.
  double float32_rtol = 1e-5, float32_atol = 1e-5;
};

const std::vector<OpCase>& AllOpCases();
inline void PrintTo(const OpCase& c, std::ostream* os) { *os << c.name; }

::testing::AssertionResult CheckShapeRule(const OpCase& c);
// `layout`: the layouts the planner may choose (compiler/layout.h); kBatchInner forces the
// batch-inner lowering of every op that has one, whatever the batch.
::testing::AssertionResult CheckForward(const OpCase& c, LayoutChoice layout = LayoutChoice::kAuto);
// Whether the case's graph holds an op whose lowering reads the layout (OpDef::batch_activation).
bool ReadsLayout(const OpCase& c);
::testing::AssertionResult CheckScheduleMatchesPlain(const OpCase& c);
// The forward pass and (for differentiable cases) every input gradient, compiled for the CUDA
// target into `dir`: the lowering's GPU placement check passes and PTX kernels come out.
::testing::AssertionResult CheckGpuCompiles(const OpCase& c, const std::string& dir);
// The PTX kernels (".entry" lines) in a compiled static library, and whether its PTX targets
// `sm` (e.g. "sm_70"); kernels < 0 when the file cannot be read.
struct PtxKernels {
  int kernels = -1;
  bool has_target = false;
};
PtxKernels ReadPtxKernels(const std::string& archive, const std::string& sm);
// The program CheckGpuCompiles compiles (inputs, the "probe" when differentiable, then layer
// parameters; outputs y0 = forward, y1... = gradients), as a static library `<prefix>.a` with
// entry point `<function>_argv`, for `target`.
absl::StatusOr<Signature> EmitOpCase(const OpCase& c, const TargetSpec& target,
                                     const std::string& prefix, const std::string& function);
// With `overrides`, the gradient graph is built with replaced VJPs (mutation testing).
::testing::AssertionResult CheckGradient(const OpCase& c, const VjpOverrides* overrides = nullptr,
                                         LayoutChoice layout = LayoutChoice::kAuto);

}  // namespace kiln::testing
