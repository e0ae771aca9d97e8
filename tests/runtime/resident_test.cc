// Resident training, the GPU path's loop, verified on the CPU: the training set, its permutation,
// the parameters, optimizer state and loss stay in stand-in device copies (DeviceTensors'
// emulation), so a missing upload or download gives wrong numbers here. The run must equal the
// ordinary fed CPU run bit for bit, with a number of copies that does not grow with the steps.
#include <cstring>
#include <filesystem>

#include "compiler/model.h"
#include "examples/models.h"
#include "gtest/gtest.h"
#include "runtime/safetensors.h"
#include "runtime/trainer.h"
#include "tests/mnist_fixture.h"

namespace kiln {
namespace {

class ResidentTest : public testing::MnistSuite {};

struct Steps {
  Graph tg, eg{Mode::kEval};
  std::unique_ptr<Executable> train, eval;
};

std::unique_ptr<Steps> Compile(int64_t resident, int64_t batch = 64) {
  auto s = std::make_unique<Steps>();
  CompileOptions o;
  o.resident_examples = resident;
  auto train = CompileTrainStep(s->tg, examples::MnistMlp(s->tg, batch), Adam(1e-3), o);
  auto eval = CompileEvalStep(s->eg, examples::MnistMlp(s->eg, 1000), {});
  EXPECT_TRUE(train.ok()) << train.status();
  EXPECT_TRUE(eval.ok()) << eval.status();
  if (!train.ok() || !eval.ok()) return nullptr;
  s->train = std::move(*train);
  s->eval = std::move(*eval);
  return s;
}

TrainConfig Config(int64_t max_steps) {
  TrainConfig c = TrainConfig::Silent(2);
  c.log_every = 100;
  c.max_steps = max_steps;
  return c;
}

TEST_F(ResidentTest, EqualsTheFedRunBitForBitWithFewCopies) {
  auto fed = Compile(0);
  auto res = Compile(train_->count);
  ASSERT_TRUE(fed && res);
  EXPECT_EQ(res->train->signature().resident_batch, 64);
  Trainer a(fed->train.get(), fed->eval.get());
  Trainer b(res->train.get(), res->eval.get());
  b.set_device_emulation(true);
  ASSERT_TRUE(a.Initialize(5).ok());
  ASSERT_TRUE(b.Initialize(5).ok());
  // A whole epoch (937 steps) and 300 of the next: two permutations, sums reset in between.
  auto sa = a.Train(*train_, Config(1237));
  auto sb = b.Train(*train_, Config(1237));
  ASSERT_TRUE(sa.ok()) << sa.status();
  ASSERT_TRUE(sb.ok()) << sb.status();
  ASSERT_EQ(sa->logged.size(), sb->logged.size());
  for (size_t i = 0; i < sa->logged.size(); ++i) {
    EXPECT_EQ(sa->logged[i].loss, sb->logged[i].loss) << "logged loss " << i;
  }
  ASSERT_EQ(sa->epochs.size(), 2u);
  ASSERT_EQ(sb->epochs.size(), 2u);
  for (int e = 0; e < 2; ++e) {
    // Summed on the device in float32 vs on the host in double: equal to float precision.
    EXPECT_NEAR(sb->epochs[e].mean_loss, sa->epochs[e].mean_loss, 1e-5 * sa->epochs[e].mean_loss);
    EXPECT_EQ(sb->epochs[e].train_accuracy, sa->epochs[e].train_accuracy) << e;
  }
  for (const std::string& name : a.parameter_names()) {
    const Tensor& x = a.parameter(name);
    const Tensor& y = b.parameter(name);  // downloads the device copy
    ASSERT_EQ(x.bytes(), y.bytes());
    EXPECT_EQ(std::memcmp(x.raw(), y.raw(), static_cast<size_t>(x.bytes())), 0) << name;
  }
  // Uploads: each parameter/state buffer once, the data set (2), the order and the sums once
  // per epoch; downloads: the 13 logged losses, the sums twice per epoch... nowhere near one
  // per step.
  const DeviceTensors* dev = b.device_tensors();
  ASSERT_NE(dev, nullptr);
  std::printf("1237 resident steps: %lld uploads, %lld downloads\n",
              static_cast<long long>(dev->uploads()), static_cast<long long>(dev->downloads()));
  EXPECT_LT(dev->uploads(), 60);
  EXPECT_LT(dev->downloads(), 60);
  EXPECT_GT(dev->uploads(), 0);
  // Evaluation reads the resident parameters.
  auto ea = a.Evaluate(*test_);
  auto eb = b.Evaluate(*test_);
  ASSERT_TRUE(ea.ok() && eb.ok());
  EXPECT_EQ(ea->correct, eb->correct);
  EXPECT_GT(eb->accuracy(), 0.9);
}

TEST_F(ResidentTest, CheckpointsRoundTripThroughTheDeviceCopies) {
  auto fed = Compile(0);
  auto res = Compile(train_->count);
  ASSERT_TRUE(fed && res);
  const std::string dir = ::testing::TempDir();
  Trainer a(fed->train.get(), fed->eval.get());
  ASSERT_TRUE(a.Initialize(9).ok());
  ASSERT_TRUE(a.Train(*train_, Config(150)).ok());
  ASSERT_TRUE(a.Save(dir + "/fed.safetensors").ok());
  // Resume the fed checkpoint resident (uploads the loaded values), continue both alike.
  Trainer b(res->train.get(), res->eval.get());
  b.set_device_emulation(true);
  ASSERT_TRUE(b.Initialize(1).ok());
  ASSERT_TRUE(b.Load(dir + "/fed.safetensors").ok());
  auto sa = a.Train(*train_, Config(120));
  auto sb = b.Train(*train_, Config(120));
  ASSERT_TRUE(sa.ok() && sb.ok());
  ASSERT_EQ(sa->logged.size(), sb->logged.size());
  for (size_t i = 0; i < sa->logged.size(); ++i) EXPECT_EQ(sa->logged[i].loss, sb->logged[i].loss);
  // Save from the device copies; no resident scratch (sum/...) in the file.
  ASSERT_TRUE(b.Save(dir + "/res.safetensors").ok());
  ASSERT_TRUE(a.Save(dir + "/fed2.safetensors").ok());
  auto fa = LoadSafetensors(dir + "/fed2.safetensors");
  auto fb = LoadSafetensors(dir + "/res.safetensors");
  ASSERT_TRUE(fa.ok() && fb.ok());
  for (const std::string& name : a.parameter_names()) {
    const Tensor* x = fa->Find(name);
    const Tensor* y = fb->Find(name);
    ASSERT_TRUE(x && y) << name;
    EXPECT_EQ(std::memcmp(x->raw(), y->raw(), static_cast<size_t>(x->bytes())), 0) << name;
  }
  EXPECT_EQ(fb->Find("sum/loss"), nullptr);
  std::filesystem::remove(dir + "/fed.safetensors");
  std::filesystem::remove(dir + "/fed2.safetensors");
  std::filesystem::remove(dir + "/res.safetensors");
}

// The registry's protocol in emulation: uploads only of what the host changed, downloads only of
// what a step wrote, and memory registered with another type or shape is not resident.
TEST(DeviceTensorsTest, EmulatedProtocol) {
  DeviceTensors dev(DeviceTensors::Mode::kEmulated);
  Tensor a(ScalarType::kF32, {4});
  a.data<float>()[0] = 1;
  dev.Add(a.ref());
  halide_buffer_t* b = dev.Prepare(a.ref(), /*output=*/false);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(static_cast<void*>(b->host), a.raw());  // the stand-in device copy
  EXPECT_EQ(reinterpret_cast<float*>(b->host)[0], 1);
  EXPECT_EQ(dev.uploads(), 1);
  EXPECT_EQ(dev.Prepare(a.ref(), false), b);
  EXPECT_EQ(dev.uploads(), 1);  // nothing changed on the host
  // A step writes the device copy; the host sees it only after ToHost.
  ASSERT_EQ(dev.Prepare(a.ref(), /*output=*/true), b);
  reinterpret_cast<float*>(b->host)[0] = 7;
  dev.DeviceWrote(a.raw());
  EXPECT_EQ(a.data<float>()[0], 1);
  ASSERT_TRUE(dev.ToHost(a.ref()).ok());
  EXPECT_EQ(a.data<float>()[0], 7);
  EXPECT_EQ(dev.downloads(), 1);
  ASSERT_TRUE(dev.ToHost(a.ref()).ok());
  EXPECT_EQ(dev.downloads(), 1);
  // The host writes; the next step uploads.
  a.data<float>()[0] = 3;
  dev.HostWrote(a.ref());
  EXPECT_EQ(reinterpret_cast<float*>(dev.Prepare(a.ref(), false)->host)[0], 3);
  EXPECT_EQ(dev.uploads(), 2);
  // Same memory seen as another tensor: not resident.
  EXPECT_EQ(dev.Prepare(TensorRef{a.raw(), ScalarType::kF32, {2, 2}}, false), nullptr);
  EXPECT_EQ(dev.Prepare(TensorRef{a.raw(), ScalarType::kI32, {4}}, false), nullptr);
  dev.Remove(a.raw());
  EXPECT_FALSE(dev.Contains(a.raw()));
  EXPECT_EQ(dev.Prepare(a.ref(), false), nullptr);
}

TEST_F(ResidentTest, StepsForgetATrainersRegistryWhenItGoes) {
  auto fed = Compile(0);
  ASSERT_TRUE(fed);
  {
    Trainer t(fed->train.get(), fed->eval.get());
    t.set_device_emulation(true);
    ASSERT_TRUE(t.Initialize(2).ok());
    EXPECT_NE(fed->train->device_tensors(), nullptr);
  }
  EXPECT_EQ(fed->train->device_tensors(), nullptr);
  EXPECT_EQ(fed->eval->device_tensors(), nullptr);
  Trainer t(fed->train.get(), fed->eval.get());
  ASSERT_TRUE(t.Initialize(2).ok());
  EXPECT_TRUE(t.Train(*train_, Config(20)).ok());
}

TEST_F(ResidentTest, RefusesWhatItCannotDo) {
  auto res = Compile(train_->count);
  ASSERT_TRUE(res);
  {  // A CPU step without emulation has no device copies to keep.
    Trainer t(res->train.get(), res->eval.get());
    ASSERT_TRUE(t.Initialize(1).ok());
    auto s = t.Train(*train_, Config(1));
    EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition) << s.status();
  }
  Trainer t(res->train.get(), res->eval.get());
  t.set_device_emulation(true);
  ASSERT_TRUE(t.Initialize(1).ok());
  TrainConfig shifted = Config(1);
  shifted.random_shift = 2;
  EXPECT_EQ(t.Train(*train_, shifted).status().code(), absl::StatusCode::kInvalidArgument);
  // Compiled for 60,000 examples, given 10,000.
  auto wrong = t.Train(*test_, Config(1));
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(wrong.status().message().find("60000"), std::string::npos) << wrong.status();
  EXPECT_NE(wrong.status().message().find("10000 examples"), std::string::npos) << wrong.status();
  // A batch longer than the data set cannot be compiled.
  Graph g;
  CompileOptions o;
  o.resident_examples = 32;
  auto bad = CompileTrainStep(g, examples::MnistMlp(g, 64), Sgd(0.1), o);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << bad.status();
}

}  // namespace
}  // namespace kiln
