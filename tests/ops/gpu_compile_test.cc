// The CUDA target without a GPU: every op case (forward and gradients) and whole training steps
// compile to PTX for it, and the lowering's placement check refuses a schedule that would leave
// a stage on the host. Running the kernels needs a device: scripts/gpu_check.sh.
#include <cstdlib>
#include <filesystem>

#include "compiler/model.h"
#include "examples/models.h"
#include "examples/softplus_op.h"
#include "tests/ops/op_check.h"

namespace kiln::testing {
namespace {

std::string TempDir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::filesystem::path p =
      std::filesystem::path(base ? base : std::filesystem::temp_directory_path().string()) /
      ("kiln_gpu_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::create_directories(p);
  return p.string();
}

class GpuOpTest : public ::testing::TestWithParam<OpCase> {};

TEST_P(GpuOpTest, CompilesToPtx) {
  const std::string dir = TempDir(GetParam().name);
  EXPECT_TRUE(CheckGpuCompiles(GetParam(), dir));
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(All, GpuOpTest, ::testing::ValuesIn(AllOpCases()),
                         [](const ::testing::TestParamInfo<OpCase>& info) {
                           return info.param.name;
                         });

TEST(GpuCompileTest, CustomElementwiseOpCompilesToPtx) {
  OpCase c{"softplus",
           {OpKind::kCustom},
           {F({3, 7})},
           [](const std::vector<Value>& x) { return examples::Softplus(x[0]); },
           nullptr};
  const std::string dir = TempDir("softplus");
  EXPECT_TRUE(CheckGpuCompiles(c, dir));
  std::filesystem::remove_all(dir);
}

TEST(GpuCompileTest, TutorialCnnTrainingAndEvaluationStepsCompileForCuda) {
  const std::string dir = TempDir("cnn");
  CompileOptions o;
  o.target.device = Device::kCuda;
  o.target.cuda_capability = 90;  // an H100/H200: Halide's highest flag, 86, is used
  {
    Graph g;
    ModelDef m = examples::MnistCnn(g, 64);
    auto program = BuildTrainProgram(g, m, Adam(1e-3), o);
    ASSERT_TRUE(program.ok()) << program.status();
    auto sig = EmitProgram(g, *program, o, dir + "/train", "train");
    ASSERT_TRUE(sig.ok()) << sig.status();
    EXPECT_EQ(sig->FindOutput(ArgRole::kLoss, "loss"), 0);
  }
  {
    Graph g;
    ModelDef m = examples::MnistCnn(g, 1000);
    auto program = BuildEvalProgram(g, m, o);
    ASSERT_TRUE(program.ok()) << program.status();
    ASSERT_TRUE(EmitProgram(g, *program, o, dir + "/eval", "eval").ok());
  }
  PtxKernels train = ReadPtxKernels(dir + "/train.a", "sm_86");
  EXPECT_TRUE(train.has_target);
  // Forward, backward and update of two convolutions, two pools and a linear layer: dozens of
  // kernels, none of the work left on the host (the placement check ran in the lowering).
  EXPECT_GE(train.kernels, 20);
  std::filesystem::remove_all(dir);
}

// Compiles y = def(x) for an input of `n` floats, for `device`, into `dir`.
absl::StatusOr<Signature> EmitCustomOp(const OpDef& def, int64_t n, const std::string& name,
                                       Device device, const std::string& dir) {
  Graph g;
  Value x = g.Input("x", {n});
  Value y = g.AddCustomNode(def, {x}, {}, name);
  StepProgram p;
  p.inputs.push_back({x.id(), ArgSpec{"x", ArgRole::kData, ScalarType::kF32, {n}, {}}});
  p.outputs.push_back({y.id(), ArgSpec{"y", ArgRole::kOutput, ScalarType::kF32, {n}, {}}});
  CompileOptions o;
  o.target.device = device;
  return EmitProgram(g, p, o, dir + "/step", "step");
}

// A complex op whose schedule hook only knows the CPU: the GPU lowering must refuse it by name
// instead of silently running it serially on the host.
absl::StatusOr<TypeAndShape> SameShape(const std::vector<const Node*>& in, const Attrs&) {
  return TypeAndShape{in[0]->dtype, in[0]->shape};
}
Lowered LowerCumulative(LowerCtx& ctx, const Node& n, const std::vector<Halide::Func>& in) {
  std::vector<Halide::Var> v = ctx.Vars(1);
  Halide::Func f = ctx.NewFunc(n);
  Halide::RDom r(1, static_cast<int>(n.shape[0]) - 1);
  ctx.Define(f, v, ctx.At(in[0], v));
  f(r) += f(r - 1);
  return {f};
}
void CpuOnlySchedule(LowerCtx&, const Node&, Lowered& l) { l.f.compute_root(); }

TEST(GpuCompileTest, StageLeftOnTheHostIsRefusedByName) {
  static const OpDef def = {"cumsum",        Pattern::kComplex, 1, SameShape, nullptr,
                            LowerCumulative, CpuOnlySchedule};
  const std::string dir = TempDir("refused");
  auto sig = EmitCustomOp(def, 16, "running_total", Device::kCuda, dir);
  ASSERT_FALSE(sig.ok());
  EXPECT_NE(sig.status().message().find("running_total"), std::string::npos) << sig.status();
  EXPECT_NE(sig.status().message().find("would run on the host"), std::string::npos)
      << sig.status();
  // The same op compiles for the CPU.
  EXPECT_TRUE(EmitCustomOp(def, 16, "running_total", Device::kCpu, dir).ok());
  std::filesystem::remove_all(dir);
}

// A helper Func computed inside the kernel's Func but outside its GPU loops would run on the
// host between launches: refused too.
Lowered LowerTwoStage(LowerCtx& ctx, const Node& n, const std::vector<Halide::Func>& in) {
  std::vector<Halide::Var> v = ctx.Vars(1);
  Halide::Func g = ctx.NewFunc(n, "helper"), f = ctx.NewFunc(n);
  ctx.Define(g, v, ctx.At(in[0], v) + 1);
  ctx.Define(f, v, ctx.At(g, v) * 2);
  return {f, {{"helper", g}}};
}
void HelperOutsideTheKernel(LowerCtx& ctx, const Node& n, Lowered& l) {
  ctx.GpuTileAll(l.f, n.shape);
  l.helpers.Get("helper").compute_at(l.f, Halide::Var::outermost());
}

TEST(GpuCompileTest, HelperOutsideTheGpuLoopsIsRefusedByName) {
  static const OpDef def = {"two_stage",   Pattern::kComplex,     1, SameShape, nullptr,
                            LowerTwoStage, HelperOutsideTheKernel};
  const std::string dir = TempDir("helper");
  auto sig = EmitCustomOp(def, 64, "shifted", Device::kCuda, dir);
  ASSERT_FALSE(sig.ok());
  EXPECT_NE(sig.status().message().find("shifted_helper"), std::string::npos) << sig.status();
  EXPECT_NE(sig.status().message().find("outside any GPU loop"), std::string::npos) << sig.status();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kiln::testing
