// CUDA without a GPU: the device query and target resolution fail clearly where there is no
// driver, and the tests that need a device skip with the reason (GTEST_SKIP). On a machine with
// an NVIDIA GPU and libHalide they run a JIT-compiled CUDA training step against the CPU.
#include <dlfcn.h>

#include <cstdlib>

#include "compiler/model.h"
#include "compiler/target.h"
#include "examples/models.h"
#include "gtest/gtest.h"
#include "runtime/cuda_device.h"
#include "runtime/nccl.h"
#include "runtime/trainer.h"
#include "runtime/two_phase_step.h"

namespace kiln {
namespace {

class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (old_.empty()) {
      unsetenv(name_);
    } else {
      setenv(name_, old_.c_str(), 1);
    }
  }

 private:
  const char* name_;
  std::string old_;
};

// Every step's loss over `steps` steps of `step` from seed 3 (empty, with a test failure, on an
// error).
std::vector<double> TrainedLosses(Executable* step, const Dataset& data, int64_t steps) {
  Trainer t(step, nullptr);
  EXPECT_TRUE(t.Initialize(3).ok());
  TrainConfig c = TrainConfig::Silent(1);
  c.log_every = 1;
  c.max_steps = steps;
  auto s = t.Train(data, c);
  EXPECT_TRUE(s.ok()) << s.status();
  std::vector<double> out;
  if (s.ok()) {
    for (const LossPoint& p : s->logged) out.push_back(p.loss);
  }
  return out;
}

// The GPU's losses within 1e-3 (relative above 1) of the CPU's, step by step.
void ExpectSameLosses(const std::vector<double>& cpu, const std::vector<double>& gpu) {
  ASSERT_EQ(cpu.size(), gpu.size());
  for (size_t i = 0; i < cpu.size(); ++i) {
    EXPECT_NEAR(gpu[i], cpu[i], 1e-3 * std::max(1.0, cpu[i])) << "step " << i;
  }
}

TEST(CudaDeviceTest, NoDriverIsUnavailableWithTheReason) {
  ScopedEnv env("KILN_LIBCUDA", "/nonexistent/libcuda.so.1");
  auto d = QueryCudaDevice();
  ASSERT_EQ(d.status().code(), absl::StatusCode::kUnavailable) << d.status();
  EXPECT_NE(d.status().message().find("/nonexistent/libcuda.so.1"), std::string::npos)
      << d.status();
  std::string note;
  auto cuda = ResolveTarget("host-cuda", &note);
  EXPECT_EQ(cuda.status().code(), absl::StatusCode::kUnavailable) << cuda.status();
  auto automatic = ResolveTarget("auto", &note);
  ASSERT_TRUE(automatic.ok()) << automatic.status();
  EXPECT_EQ(automatic->device, Device::kCpu);
  EXPECT_NE(note.find("target host (auto: CUDA is unavailable"), std::string::npos) << note;
  auto host = ResolveTarget("host", &note);
  ASSERT_TRUE(host.ok());
  EXPECT_EQ(note, "target host");
}

TEST(CudaDeviceTest, TheToolkitStubIsNotADevice) {
  const char* stub = "/usr/local/cuda/lib64/stubs/libcuda.so";
  if (access(stub, R_OK) != 0) GTEST_SKIP() << "no CUDA Toolkit stub library at " << stub;
  ScopedEnv env("KILN_LIBCUDA", stub);
  auto d = QueryCudaDevice();
  ASSERT_EQ(d.status().code(), absl::StatusCode::kUnavailable) << d.status();
  EXPECT_NE(d.status().message().find("cuInit failed"), std::string::npos) << d.status();
}

TEST(CudaDeviceTest, DescribesADevice) {
  CudaDevice d;
  d.name = "NVIDIA H200";
  d.capability = 90;
  d.memory_bytes = int64_t{140} << 30;
  d.driver_version = 13000;
  EXPECT_EQ(DescribeCudaDevice(d), "NVIDIA H200 (compute capability 9.0, 140.0 GiB, driver 13.0)");
}

// JIT compilation for CUDA needs no device; running needs one: without a driver the step fails
// with an error, not a crash.
TEST(CudaRuntimeTest, JitStepCompilesWithoutADeviceAndFailsCleanlyToRun) {
  ScopedEnv env("KILN_LIBCUDA", "/nonexistent/libcuda.so.1");
  if (QueryCudaDevice().ok()) GTEST_SKIP() << "a CUDA device is present";
  Graph g;
  CompileOptions o;
  o.target.device = Device::kCuda;
  auto step = CompileTrainStep(g, examples::MnistSoftmax(g, 16), Sgd(0.1), o);
  ASSERT_TRUE(step.ok()) << step.status();
  EXPECT_TRUE((*step)->on_device());
  std::vector<Tensor> in, out;
  std::vector<TensorRef> ir, orf;
  for (const ArgSpec& a : (*step)->signature().inputs) in.emplace_back(a.type, a.shape);
  for (const ArgSpec& a : (*step)->signature().outputs) out.emplace_back(a.type, a.shape);
  for (Tensor& t : in) ir.push_back(t.ref());
  for (Tensor& t : out) orf.push_back(t.ref());
  absl::Status run = (*step)->Run(ir, orf);
  EXPECT_EQ(run.code(), absl::StatusCode::kInternal) << run;
}

// Needs a GPU: 30 resident steps of the MLP through Halide's JIT for CUDA against the CPU run.
TEST(CudaRuntimeTest, JitTrainingStepMatchesTheCpu) {
  auto dev = QueryCudaDevice();
  if (!dev.ok()) GTEST_SKIP() << dev.status().message();
  auto train = LoadMnist(KILN_TEST_SOURCE_DIR "/data/mnist", MnistSplit::kTrain);
  ASSERT_TRUE(train.ok()) << train.status();
  std::vector<double> losses[2];
  for (int gpu = 0; gpu < 2; ++gpu) {
    Graph g;
    CompileOptions o;
    if (gpu) {
      o.target.device = Device::kCuda;
      o.target.cuda_capability = dev->capability;
      o.resident_examples = train->count;
    }
    auto step = CompileTrainStep(g, examples::MnistMlp(g, 64), Adam(1e-3), o);
    ASSERT_TRUE(step.ok()) << step.status();
    EXPECT_EQ((*step)->on_device(), gpu == 1);
    losses[gpu] = TrainedLosses(step->get(), *train, 30);
  }
  ExpectSameLosses(losses[0], losses[1]);
}

// Needs a GPU and NCCL: NCCL and Halide work in one CUDA context. NCCL (one rank) sums each
// gradient Halide's gradient phase left on the device, in place, for 20 resident MLP steps: the
// device addresses belong to NCCL's context (cuPointerGetAttribute), and the run matches the CPU.
TEST(CudaRuntimeTest, NcclAndHalideShareOneContext) {
  auto dev = QueryCudaDevice();
  if (!dev.ok()) GTEST_SKIP() << dev.status().message();
  if (absl::StatusOr<NcclLibrary> lib = LoadNccl(); !lib.ok()) {
    GTEST_SKIP() << lib.status().message();
  }
  std::unique_ptr<Communicator> host = SingleProcess();
  auto nccl = NcclCommunicator::Create(*host, 0);
  ASSERT_TRUE(nccl.ok()) << nccl.status();
  ASSERT_NE(SharedCudaContext(), nullptr);
  using PointerAttribute = int (*)(void*, int, unsigned long long);
  void* cuda = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(cuda, nullptr);
  auto attribute = reinterpret_cast<PointerAttribute>(dlsym(cuda, "cuPointerGetAttribute"));
  ASSERT_NE(attribute, nullptr);
  auto train = LoadMnist(KILN_TEST_SOURCE_DIR "/data/mnist", MnistSplit::kTrain);
  ASSERT_TRUE(train.ok()) << train.status();
  std::vector<double> losses[2];
  int checked = 0;
  for (int gpu = 0; gpu < 2; ++gpu) {
    Graph g;
    CompileOptions o;
    o.two_phase = true;
    if (gpu) {
      o.target.device = Device::kCuda;
      o.target.cuda_capability = dev->capability;
      o.resident_examples = train->count;
    }
    auto step = CompileTrainStep(g, examples::MnistMlp(g, 64), Sgd(0.05), o);
    ASSERT_TRUE(step.ok()) << step.status();
    if (gpu) {
      static_cast<TwoPhaseStep*>(step->get())
          ->set_between_phases_on_device([&](const std::vector<TwoPhaseStep::DeviceSpan>& spans) {
            for (const auto& s : spans) {
              void* ctx = nullptr;  // CU_POINTER_ATTRIBUTE_CONTEXT = 1
              EXPECT_EQ(attribute(&ctx, 1, reinterpret_cast<uintptr_t>(s.address)), 0);
              EXPECT_EQ(ctx, SharedCudaContext());
              ++checked;
            }
            std::vector<Communicator::Span> all;
            for (const auto& s : spans) all.push_back({s.address, s.count, s.type});
            return (*nccl)->AllReduceSumMany(all);
          });
    }
    losses[gpu] = TrainedLosses(step->get(), *train, 20);
  }
  EXPECT_GT(checked, 0);
  ExpectSameLosses(losses[0], losses[1]);
}

}  // namespace
}  // namespace kiln
