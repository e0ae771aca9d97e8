// The training step in two phases (CompileOptions::two_phase) against the one-pipeline step: the
// same bits in every parameter and optimizer state after 100 steps (SGD, momentum, Nesterov, Adam;
// clipping and weight decay; batch norm and dropout), on the host-fed path and resident with
// emulated device copies; the gradient buffer's layout; and the gradient scale a data-parallel
// run uses.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "compiler/model.h"
#include "examples/models.h"
#include "gtest/gtest.h"
#include "runtime/manifest.h"
#include "runtime/step_args.h"
#include "runtime/trainer.h"
#include "runtime/two_phase_step.h"
#include "tests/mnist_fixture.h"

namespace kiln {
namespace {

class TwoPhaseTest : public testing::MnistSuite {};

using Build = ModelDef (*)(Graph&, int64_t);

struct Steps {
  Graph tg, eg{Mode::kEval};
  std::unique_ptr<Executable> train, eval;
};

std::unique_ptr<Steps> Compile(Build build, const Optimizer& opt, bool two_phase,
                               int64_t batch = 64, int64_t resident = 0) {
  auto s = std::make_unique<Steps>();
  CompileOptions o;
  o.two_phase = two_phase;
  o.resident_examples = resident;
  auto train = CompileTrainStep(s->tg, build(s->tg, batch), opt, o);
  auto eval = CompileEvalStep(s->eg, build(s->eg, 500), {});
  EXPECT_TRUE(train.ok()) << train.status();
  EXPECT_TRUE(eval.ok()) << eval.status();
  if (!train.ok() || !eval.ok()) return nullptr;
  s->train = std::move(*train);
  s->eval = std::move(*eval);
  return s;
}

// Parameters and state of two trainers compared: the number of tensors that differ in any bit,
// and the largest relative difference of an element (relative to the tensor's largest value).
struct Difference {
  int tensors_differing = 0;
  double max_relative = 0;
  std::string worst;
};
Difference Compare(const Trainer& a, const Trainer& b, const std::vector<std::string>& names) {
  Difference d;
  for (const std::string& name : names) {
    const Tensor& x = a.parameter(name);
    const Tensor& y = b.parameter(name);
    EXPECT_EQ(x.bytes(), y.bytes()) << name;
    if (x.bytes() != y.bytes()) continue;
    if (std::memcmp(x.raw(), y.raw(), static_cast<size_t>(x.bytes())) == 0) continue;
    ++d.tensors_differing;
    double scale = 0, diff = 0;
    for (int64_t i = 0; i < x.size(); ++i) scale = std::max(scale, std::abs(x.At(i)));
    for (int64_t i = 0; i < x.size(); ++i) diff = std::max(diff, std::abs(x.At(i) - y.At(i)));
    const double rel = diff / std::max(scale, 1e-30);
    if (rel > d.max_relative) d.max_relative = rel, d.worst = name;
  }
  return d;
}

std::vector<std::string> Names(const Trainer& t, const Signature& sig) {
  std::vector<std::string> out = t.parameter_names();
  for (const ArgSpec& a : sig.inputs) {
    if (a.role == ArgRole::kState && a.kind != ArgKind::kRunningSum) out.push_back(a.name);
  }
  return out;
}

void ExpectSameAfter100Steps(const Dataset& data, Build build, const Optimizer& opt,
                             bool resident = false) {
  const int64_t examples = resident ? 60000 : 0;
  auto one = Compile(build, opt, false);
  auto two = Compile(build, opt, true, 64, examples);
  ASSERT_TRUE(one && two);
  Trainer a(one->train.get(), one->eval.get());
  Trainer b(two->train.get(), two->eval.get());
  b.set_device_emulation(resident);
  ASSERT_TRUE(a.Initialize(3).ok());
  ASSERT_TRUE(b.Initialize(3).ok());
  TrainConfig c = TrainConfig::Silent(1);
  c.max_steps = 100;
  c.log_every = 10;
  auto sa = a.Train(data, c);
  auto sb = b.Train(data, c);
  ASSERT_TRUE(sa.ok()) << sa.status();
  ASSERT_TRUE(sb.ok()) << sb.status();
  ASSERT_EQ(sb->steps, 100);
  const Difference d = Compare(a, b, Names(a, one->train->signature()));
  EXPECT_EQ(d.tensors_differing, 0)
      << "largest relative difference " << d.max_relative << " (" << d.worst << ")";
  std::printf(
      "after 100 steps: %d of %zu tensors differ in some bit; largest relative "
      "difference %.3g (%s)\n",
      d.tensors_differing, Names(a, one->train->signature()).size(), d.max_relative,
      d.worst.empty() ? "none" : d.worst.c_str());
  for (size_t i = 0; i < sa->logged.size() && i < sb->logged.size(); ++i) {
    EXPECT_EQ(sa->logged[i].loss, sb->logged[i].loss) << i;
  }
}

// The optimizer's arithmetic is strict and the update phase stores its scaled gradients
// (compiler/lower.cc); without either, Adam and clipping rounded differently in the two forms.
TEST_F(TwoPhaseTest, MlpMomentumIsBitwiseEqual) {
  ExpectSameAfter100Steps(*train_, examples::MnistMlp, Momentum(0.01));
}
TEST_F(TwoPhaseTest, CnnSgdIsBitwiseEqual) {
  ExpectSameAfter100Steps(*train_, examples::MnistCnn, Sgd(0.01));
}
TEST_F(TwoPhaseTest, CnnWithBatchNormAndDropoutSgdIsBitwiseEqual) {
  ExpectSameAfter100Steps(*train_, examples::MnistCnnBn, Sgd(0.01));
}
TEST_F(TwoPhaseTest, ResidentWithDeviceCopiesIsBitwiseEqual) {
  ExpectSameAfter100Steps(*train_, examples::MnistMlp, Sgd(0.05), /*resident=*/true);
}
TEST_F(TwoPhaseTest, MlpAdamWithClippingAndDecayIsBitwiseEqual) {
  Adam adam(1e-3);
  adam.WithWeightDecay(1e-4).WithDecayFilter(DecayAllButBiases).WithClipGlobalNorm(1.0);
  ExpectSameAfter100Steps(*train_, examples::MnistMlp, adam);
}
TEST_F(TwoPhaseTest, CnnBatchNormNesterovWithClippingAndDecayIsBitwiseEqual) {
  Momentum momentum(0.01, 0.9, /*nesterov=*/true);
  momentum.WithWeightDecay(5e-4).WithClipGlobalNorm(5.0);
  ExpectSameAfter100Steps(*train_, examples::MnistCnnBn, momentum);
}
TEST_F(TwoPhaseTest, CnnAdamWIsBitwiseEqual) {
  ExpectSameAfter100Steps(*train_, examples::MnistCnn, AdamW(1e-3));
}

TEST_F(TwoPhaseTest, SignatureAndGradientBufferLayout) {
  auto two = Compile(examples::MnistMlp, Adam(1e-3), true);
  ASSERT_TRUE(two);
  auto* step = dynamic_cast<TwoPhaseStep*>(two->train.get());
  ASSERT_NE(step, nullptr);
  const Signature& sig = step->signature();
  // What one pipeline takes, plus the gradient scale; no gradient argument is visible.
  auto one = Compile(examples::MnistMlp, Adam(1e-3), false);
  ASSERT_TRUE(one);
  EXPECT_EQ(sig.inputs.size(), one->train->signature().inputs.size() + 1);
  EXPECT_EQ(sig.outputs.size(), one->train->signature().outputs.size());
  const int scale = sig.FindInput(ArgKind::kGradScale);
  ASSERT_GE(scale, 0);
  EXPECT_EQ(sig.inputs[scale].name, kGradScaleHyper);
  EXPECT_EQ(sig.inputs[scale].init.a, 1.0);
  for (const ArgSpec& a : sig.inputs) EXPECT_NE(a.role, ArgRole::kGradient) << a.name;
  // Every gradient 64-byte aligned, in parameter order, padded, inside one buffer.
  const Signature& g = step->gradient_phase().signature();
  int64_t end = 0, count = 0;
  for (const ArgSpec& a : g.outputs) {
    if (a.role != ArgRole::kGradient) continue;
    ++count;
    EXPECT_EQ(a.offset % 16, 0) << a.name;
    EXPECT_GE(a.offset, end) << a.name;
    EXPECT_EQ("grad/" + g.inputs[a.param].name, a.name);
    end = a.offset + NumElements(a.shape);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(step->GradientView(a).data) % kGradientAlignBytes, 0u);
  }
  EXPECT_EQ(count, 6);  // 3 weights, 3 biases
  EXPECT_EQ(g.gradient_elements, (end + 15) / 16 * 16);
  EXPECT_EQ(step->gradients().size(), g.gradient_elements);
  EXPECT_EQ(step->update_phase().signature().gradient_elements, g.gradient_elements);

  // The AOT manifest carries both phases; a gradient off its 64-byte boundary is refused.
  AotManifest m;
  m.name = "mlp";
  m.target = "host";
  m.optimizer = "adam";
  m.batch = 64;
  m.eval_batch = 500;
  m.two_phase = true;
  m.train_gradient = g;
  m.train_update = step->update_phase().signature();
  m.eval = two->eval->signature();
  auto back = ParseManifest(ManifestToJson(m));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(back->two_phase);
  EXPECT_EQ(back->train_gradient.gradient_elements, g.gradient_elements);
  EXPECT_EQ(ManifestToJson(*back), ManifestToJson(m));
  for (ArgSpec& a : m.train_update.inputs) {
    if (a.role == ArgRole::kGradient && a.offset > 0) {
      a.offset += 1;
      break;
    }
  }
  auto bad = ParseManifest(ManifestToJson(m));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("64-byte boundary"), std::string::npos) << bad.status();
  // An aligned offset far past the buffer (no overflow in the check), and a gradient of another
  // type than the rest of the buffer.
  for (ArgSpec& a : m.train_update.inputs) {
    if (a.role == ArgRole::kGradient && a.offset % 16 != 0) a.offset = int64_t{1} << 62;
  }
  bad = ParseManifest(ManifestToJson(m));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("64-byte boundary"), std::string::npos) << bad.status();
  m.train_update = step->update_phase().signature();
  for (ArgSpec& a : m.train_update.inputs) {
    if (a.role == ArgRole::kGradient && a.shape.size() == 1) {
      a.type = ScalarType::kF64;
      m.train_update.inputs[a.param].type = ScalarType::kF64;
      break;
    }
  }
  bad = ParseManifest(ManifestToJson(m));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("another type"), std::string::npos) << bad.status();
}

// One step over a batch of 64 against two processes' worth of gradient phases over its halves:
// their buffers summed and the update run with grad_scale 1/2 (what data-parallel training does
// with N = 2) give the same gradients and parameters.
TEST_F(TwoPhaseTest, SummedHalfBatchGradientsWithScaleHalfEqualTheFullBatch) {
  auto full = Compile(examples::MnistMlp, Sgd(0.1), true, 64);
  auto half = Compile(examples::MnistMlp, Sgd(0.1), true, 32);
  ASSERT_TRUE(full && half);
  auto* f = dynamic_cast<TwoPhaseStep*>(full->train.get());
  auto* h = dynamic_cast<TwoPhaseStep*>(half->train.get());
  ASSERT_TRUE(f && h);
  ParameterStore fs, hs;
  ASSERT_TRUE(fs.Initialize(f->signature(), 7).ok());
  ASSERT_TRUE(hs.Initialize(h->signature(), 7).ok());
  const Dataset& data = *train_;
  // Feeds the first `rows` examples from `first` on; scalars from their defaults or `scale`.
  std::vector<Tensor> fed;
  auto feeder = [&](int64_t first, double scale) {
    return [&fed, &data, first, scale](const ArgSpec& a) -> absl::StatusOr<TensorRef> {
      fed.emplace_back(a.type, a.shape);
      Tensor& t = fed.back();
      if (a.kind == ArgKind::kExample) {
        std::memcpy(t.raw(), data.pixels.data() + first * 784, static_cast<size_t>(t.bytes()));
      } else if (a.kind == ArgKind::kTarget) {
        std::memcpy(t.raw(), data.labels.data() + first, static_cast<size_t>(t.bytes()));
      } else if (a.role == ArgRole::kHyper) {
        t.Set(0, a.kind == ArgKind::kGradScale ? scale : a.init.a);
      }
      return t.ref();
    };
  };
  fed.reserve(64);  // the references stay valid
  auto fa = BindStepArgs(f->signature(), fs, 0, feeder(0, 1.0));
  ASSERT_TRUE(fa.ok()) << fa.status();
  ASSERT_TRUE(f->Run(fa->in, fa->out).ok());
  // "Process" 1 and 2: the gradient phase over each half; the sum goes into the buffer the update
  // phase of the first reads.
  Tensor other;
  auto second = BindStepArgs(h->signature(), hs, 0, feeder(32, 0.5));
  ASSERT_TRUE(second.ok());
  h->set_between_phases([&](Tensor& g) {
    other = g;  // the second half's gradients
    return absl::OkStatus();
  });
  ASSERT_TRUE(h->Run(second->in, second->out).ok());  // updates the other half of hs: discarded
  auto first = BindStepArgs(h->signature(), hs, 0, feeder(0, 0.5));
  ASSERT_TRUE(first.ok());
  h->set_between_phases([&](Tensor& g) {
    for (int64_t i = 0; i < g.size(); ++i) g.data<float>()[i] += other.data<float>()[i];
    return absl::OkStatus();
  });
  ASSERT_TRUE(h->Run(first->in, first->out).ok());
  // The summed buffer is twice the full batch's mean gradient; the parameters equal.
  const Tensor& gf = f->gradients();
  const Tensor& gh = h->gradients();
  ASSERT_EQ(gf.size(), gh.size());
  double gmax = 0, gdiff = 0;
  for (int64_t i = 0; i < gf.size(); ++i) {
    gmax = std::max(gmax, std::abs(gf.At(i)));
    gdiff = std::max(gdiff, std::abs(gf.At(i) - 0.5 * gh.At(i)));
  }
  EXPECT_GT(gmax, 0);
  EXPECT_LE(gdiff, 1e-5 * gmax);
  for (ParameterStore::Slot& s : fs.slots()) {
    if (s.spec.role != ArgRole::kParam) continue;
    const Tensor& a = s.buf[1];
    const Tensor& b = hs.Find(s.spec.name)->buf[1];
    double scale = 0, diff = 0;
    for (int64_t i = 0; i < a.size(); ++i) {
      scale = std::max(scale, std::abs(a.At(i)));
      diff = std::max(diff, std::abs(a.At(i) - b.At(i)));
    }
    EXPECT_LE(diff, 1e-6 * scale) << s.spec.name;
  }
}

TEST_F(TwoPhaseTest, AHookErrorStopsTheStepBeforeTheUpdate) {
  auto two = Compile(examples::MnistSoftmax, Sgd(0.1), true);
  ASSERT_TRUE(two);
  auto* step = dynamic_cast<TwoPhaseStep*>(two->train.get());
  ASSERT_NE(step, nullptr);
  step->set_between_phases(
      [](Tensor&) { return absl::UnavailableError("the other process went away"); });
  Trainer t(two->train.get(), two->eval.get());
  ASSERT_TRUE(t.Initialize(1).ok());
  const Tensor before = t.parameter("fc.weight");
  TrainConfig c = TrainConfig::Silent(1);
  c.max_steps = 1;
  auto s = t.Train(*train_, c);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(absl::IsUnavailable(s.status())) << s.status();
  EXPECT_EQ(std::memcmp(before.raw(), t.parameter("fc.weight").raw(),
                        static_cast<size_t>(before.bytes())),
            0);
  EXPECT_EQ(t.step(), 0);
}

TEST_F(TwoPhaseTest, PhasesThatDoNotFitAreRefused) {
  auto a = Compile(examples::MnistSoftmax, Sgd(0.1), true);
  auto b = Compile(examples::MnistMlp, Sgd(0.1), true);
  ASSERT_TRUE(a && b);
  auto* sa = dynamic_cast<TwoPhaseStep*>(a->train.get());
  auto* sb = dynamic_cast<TwoPhaseStep*>(b->train.get());
  ASSERT_TRUE(sa && sb);
  // Non-owning stand-ins for the phases of two different models.
  struct Borrowed : Executable {
    explicit Borrowed(Executable& e) : e(e) {}
    const Signature& signature() const override { return e.signature(); }
    absl::Status Run(const std::vector<TensorRef>& in, const std::vector<TensorRef>& out) override {
      return e.Run(in, out);
    }
    double compile_seconds() const override { return 0; }
    Executable& e;
  };
  auto made = TwoPhaseStep::Make(std::make_unique<Borrowed>(sa->gradient_phase()),
                                 std::make_unique<Borrowed>(sb->update_phase()));
  ASSERT_FALSE(made.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(made.status()));
  EXPECT_NE(made.status().message().find("the two phases do not fit"), std::string::npos)
      << made.status();
  EXPECT_FALSE(TwoPhaseStep::Make(nullptr, nullptr).ok());
}

}  // namespace
}  // namespace kiln
