// Optimizer update rules, compiled into a training step in float64, against a float64 replay of
// the same steps written out by hand here. Loss: 0.5 * sum(c * p^2), so g = c * p changes every
// step and the rules' state matters.
#include <cmath>
#include <functional>
#include <limits>

#include "compiler/model.h"
#include "dsl/api.h"
#include "gtest/gtest.h"

namespace kiln {
namespace {

constexpr int kSteps = 4;
const double kC[3] = {1.0, -2.0, 0.5};
const double kP0[3] = {0.3, -0.7, 1.1};

// Runs kSteps of `opt` through the compiled step; returns the final parameter.
std::vector<double> RunCompiled(const Optimizer& opt, double lr) {
  Graph g;
  Value c = g.Input("c", {3});
  Value p = g.Parameter("p", {3}, Initializer::Zeros());
  ModelDef m;
  m.inputs = {c};
  m.loss = Sum(c * Square(p)) * 0.5;
  CompileOptions o;
  o.float64 = true;
  auto step = CompileTrainStep(g, m, opt, o);
  EXPECT_TRUE(step.ok()) << step.status();
  if (!step.ok()) return {};
  const Signature& sig = (*step)->signature();
  std::vector<Tensor> in, out;
  for (const ArgSpec& a : sig.inputs) in.emplace_back(a.type, a.shape);
  for (const ArgSpec& a : sig.outputs) out.emplace_back(a.type, a.shape);
  const int pi = sig.FindInput(ArgRole::kParam, "p");
  for (int k = 0; k < 3; ++k) {
    in[0].data<double>()[k] = kC[k];
    in[pi].data<double>()[k] = kP0[k];
  }
  for (int s = 0; s < kSteps; ++s) {
    for (size_t i = 0; i < sig.inputs.size(); ++i) {
      if (sig.inputs[i].role != ArgRole::kHyper) continue;
      in[i].data<double>()[0] = sig.inputs[i].name == "lr" ? lr : s + 1.0;
    }
    std::vector<TensorRef> ir, orf;
    for (Tensor& t : in) ir.push_back(t.ref());
    for (Tensor& t : out) orf.push_back(t.ref());
    EXPECT_TRUE((*step)->Run(ir, orf).ok());
    // Outputs become the next inputs (same order: param, then states).
    for (size_t o2 = 0; o2 < sig.outputs.size(); ++o2) {
      const ArgSpec& a = sig.outputs[o2];
      if (a.role == ArgRole::kNewParam || a.role == ArgRole::kNewState) {
        int i =
            sig.FindInput(a.role == ArgRole::kNewParam ? ArgRole::kParam : ArgRole::kState, a.name);
        in[i] = out[o2];
      }
    }
  }
  return {in[pi].data<double>()[0], in[pi].data<double>()[1], in[pi].data<double>()[2]};
}

// The replay: `rule(p, g, t)` updates p in place for step t (1-based), keeping its own state.
std::vector<double> Replay(
    const std::function<void(std::vector<double>&, std::vector<double>, int)>& rule) {
  std::vector<double> p(kP0, kP0 + 3);
  for (int t = 1; t <= kSteps; ++t) {
    std::vector<double> g(3);
    for (int k = 0; k < 3; ++k) g[k] = kC[k] * p[k];
    rule(p, g, t);
  }
  return p;
}

void ExpectNear(const std::vector<double>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t k = 0; k < got.size(); ++k) EXPECT_NEAR(got[k], want[k], 1e-12) << "element " << k;
}

TEST(OptimizerTest, Sgd) {
  ExpectNear(RunCompiled(Sgd(0.1), 0.1), Replay([](auto& p, auto g, int) {
               for (int k = 0; k < 3; ++k) p[k] -= 0.1 * g[k];
             }));
}

TEST(OptimizerTest, SgdWithL2WeightDecay) {
  Sgd opt(0.1);
  opt.WithWeightDecay(0.05);
  ExpectNear(RunCompiled(opt, 0.1), Replay([](auto& p, auto g, int) {
               for (int k = 0; k < 3; ++k) p[k] -= 0.1 * (g[k] + 0.05 * p[k]);
             }));
}

TEST(OptimizerTest, DecayFilterExemptsParameters) {
  Sgd opt(0.1);
  opt.WithWeightDecay(0.05).WithDecayFilter([](const std::string& n) { return n != "p"; });
  ExpectNear(RunCompiled(opt, 0.1), RunCompiled(Sgd(0.1), 0.1));
  EXPECT_FALSE(DecayAllButBiases("fc.bias"));
  EXPECT_TRUE(DecayAllButBiases("fc.weight"));
}

TEST(OptimizerTest, Momentum) {
  std::vector<double> v(3, 0);
  ExpectNear(RunCompiled(Momentum(0.1, 0.9), 0.1), Replay([&](auto& p, auto g, int) {
               for (int k = 0; k < 3; ++k) {
                 v[k] = 0.9 * v[k] + g[k];
                 p[k] -= 0.1 * v[k];
               }
             }));
}

TEST(OptimizerTest, Nesterov) {
  std::vector<double> v(3, 0);
  ExpectNear(RunCompiled(Momentum(0.1, 0.9, true), 0.1), Replay([&](auto& p, auto g, int) {
               for (int k = 0; k < 3; ++k) {
                 v[k] = 0.9 * v[k] + g[k];
                 p[k] -= 0.1 * (g[k] + 0.9 * v[k]);
               }
             }));
}

TEST(OptimizerTest, Adagrad) {
  std::vector<double> s(3, 0);
  ExpectNear(RunCompiled(Adagrad(0.5), 0.5), Replay([&](auto& p, auto g, int) {
               for (int k = 0; k < 3; ++k) {
                 s[k] += g[k] * g[k];
                 p[k] -= 0.5 * g[k] / (std::sqrt(s[k]) + 1e-10);
               }
             }));
}

TEST(OptimizerTest, RmsProp) {
  std::vector<double> s(3, 0);
  ExpectNear(RunCompiled(RmsProp(0.01), 0.01), Replay([&](auto& p, auto g, int) {
               for (int k = 0; k < 3; ++k) {
                 s[k] = 0.99 * s[k] + 0.01 * g[k] * g[k];
                 p[k] -= 0.01 * g[k] / (std::sqrt(s[k]) + 1e-8);
               }
             }));
}

void AdamReplay(std::vector<double>& p, const std::vector<double>& g, int t, std::vector<double>& m,
                std::vector<double>& v, double lr, double wd) {
  for (int k = 0; k < 3; ++k) {
    double decayed = p[k] - lr * wd * p[k];
    m[k] = 0.9 * m[k] + 0.1 * g[k];
    v[k] = 0.999 * v[k] + 0.001 * g[k] * g[k];
    double mh = m[k] / (1 - std::pow(0.9, t)), vh = v[k] / (1 - std::pow(0.999, t));
    p[k] = decayed - lr * mh / (std::sqrt(vh) + 1e-8);
  }
}

TEST(OptimizerTest, AdamWithBiasCorrectionFromTheStepInput) {
  std::vector<double> m(3, 0), v(3, 0);
  ExpectNear(RunCompiled(Adam(0.05), 0.05),
             Replay([&](auto& p, auto g, int t) { AdamReplay(p, g, t, m, v, 0.05, 0); }));
}

TEST(OptimizerTest, AdamWDecouplesWeightDecay) {
  std::vector<double> m(3, 0), v(3, 0);
  ExpectNear(RunCompiled(AdamW(0.05, 0.1), 0.05),
             Replay([&](auto& p, auto g, int t) { AdamReplay(p, g, t, m, v, 0.05, 0.1); }));
}

TEST(OptimizerTest, ClipByGlobalNorm) {
  Sgd opt(0.1);
  opt.WithClipGlobalNorm(0.5);
  ExpectNear(RunCompiled(opt, 0.1), Replay([](auto& p, auto g, int) {
               double n = std::sqrt(g[0] * g[0] + g[1] * g[1] + g[2] * g[2]);
               double scale = std::min(1.0, 0.5 / n);
               for (int k = 0; k < 3; ++k) p[k] -= 0.1 * g[k] * scale;
             }));
}

TEST(OptimizerTest, MakeOptimizerByName) {
  for (const char* name : {"sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"}) {
    auto o = MakeOptimizer(name, 0.1);
    ASSERT_TRUE(o.ok()) << name;
    EXPECT_EQ((*o)->name(), name);
  }
  auto bad = MakeOptimizer("lion", 0.1);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("unknown optimizer \"lion\""), std::string::npos);
}

void ExpectRefused(const Optimizer& o, const std::string& fragment) {
  absl::Status s = o.Validate();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << o.name() << ": " << s;
  EXPECT_NE(s.message().find(fragment), std::string::npos) << s;
}

TEST(OptimizerTest, RefusesSettingsOutsideTheirRange) {
  for (double lr : {-0.1, 0.0, std::nan(""), std::numeric_limits<double>::infinity()}) {
    ExpectRefused(Sgd(lr), "sgd: the learning rate must be finite and in (0, inf)");
    EXPECT_EQ(MakeOptimizer("adam", lr).status().code(), absl::StatusCode::kInvalidArgument);
  }
  ExpectRefused(Momentum(0.1, 1.0), "momentum: the momentum must be finite and in [0, 1)");
  ExpectRefused(Adam(0.1, 0.9, 1.5), "adam: beta2 must be finite and in [0, 1), got 1.5");
  ExpectRefused(Adagrad(0.1, 0.0), "adagrad: eps must be finite and in (0, inf)");
  ExpectRefused(RmsProp(0.1, -0.5), "rmsprop: alpha");
  Sgd decay(0.1);
  decay.WithWeightDecay(-1);
  ExpectRefused(decay, "the weight decay must be finite and in [0, inf), got -1");
  Sgd clip(0.1);
  clip.WithClipGlobalNorm(std::nan(""));
  ExpectRefused(clip, "the gradient clipping norm");
  EXPECT_TRUE(Adam(1e-3).Validate().ok());
  EXPECT_TRUE(Momentum(0.1, 0.0).Validate().ok());
}

TEST(OptimizerTest, CompilingATrainingStepValidatesTheOptimizer) {
  Graph g;
  Value x = g.Input("x", {2, 3});
  Value w = g.Parameter("w", {3, 1}, Initializer::Zeros());
  ModelDef m;
  m.inputs = {x};
  m.loss = Mean(Square(MatMul(x, w)));
  auto step = CompileTrainStep(g, m, Sgd(-1), {});
  EXPECT_EQ(step.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(step.status().message().find("learning rate"), std::string::npos) << step.status();
}

}  // namespace
}  // namespace kiln
