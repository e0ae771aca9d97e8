// The training workflow over compiled steps: resume from a checkpoint is bit-exact, divergence
// stops with the step and last finite loss, results are bitwise identical with 1 or 2 threads,
// per-epoch validation picks the best epoch, learning-rate schedules feed the step.
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "compiler/model.h"
#include "dsl/api.h"
#include "gtest/gtest.h"
#include "runtime/dataset.h"
#include "runtime/safetensors.h"
#include "runtime/trainer.h"

namespace kiln {
namespace {

// The label is the brightest of 4 blocks of pixels; `side` x `side` images.
Dataset Blocks(int64_t count, uint64_t seed, int side = 4) {
  Dataset d;
  d.count = count;
  d.example_shape = {side, side};
  Rng rng(seed);
  const int n = side * side;
  for (int64_t i = 0; i < count; ++i) {
    int label = static_cast<int>(rng.Next() % 4);
    for (int p = 0; p < n; ++p) {
      bool hot = p * 4 / n == label;
      d.pixels.push_back(static_cast<uint8_t>(hot ? 150 + rng.Next() % 100 : rng.Next() % 140));
    }
    d.labels.push_back(label);
  }
  return d;
}

ModelDef Mlp(Graph& g, int64_t batch, int64_t in, int64_t hidden) {
  Value x = g.Input("x", {batch, in});
  Value y = g.Input("y", {batch}, DType::kInt32);
  Value logits = Linear(g, "fc2", hidden, 4)(Relu(Linear(g, "fc1", in, hidden)(x)));
  ModelDef m;
  m.inputs = {x, y};
  m.loss = Mean(SoftmaxCrossEntropy(logits, y));
  m.metrics = {{"correct", AccuracyCount(logits, y)}};
  m.eval_outputs = {{"prediction", ArgMax(logits, 1)}, {"loss", SoftmaxCrossEntropy(logits, y)}};
  return m;
}

struct Steps {
  std::unique_ptr<Graph> tg = std::make_unique<Graph>(), eg = std::make_unique<Graph>();
  std::unique_ptr<Executable> train, eval;
};

Steps Compile(const Optimizer& opt, int64_t in = 16, int64_t hidden = 8, int64_t batch = 8) {
  Steps s;
  auto t = CompileTrainStep(*s.tg, Mlp(*s.tg, batch, in, hidden), opt, {});
  auto e = CompileEvalStep(*s.eg, Mlp(*s.eg, 5, in, hidden), {});
  EXPECT_TRUE(t.ok()) << t.status();
  EXPECT_TRUE(e.ok()) << e.status();
  if (t.ok()) s.train = std::move(*t);
  if (e.ok()) s.eval = std::move(*e);
  return s;
}

bool SameBits(const Tensor& a, const Tensor& b) {
  return a.bytes() == b.bytes() && std::memcmp(a.raw(), b.raw(), a.bytes()) == 0;
}

TEST(WorkflowTest, ResumingFromAnEpochCheckpointIsBitExact) {
  Steps s = Compile(Adam(0.01));
  ASSERT_TRUE(s.train && s.eval);
  Dataset data = Blocks(96, 1);
  Trainer straight(s.train.get(), s.eval.get());
  ASSERT_TRUE(straight.Initialize(7).ok());
  TrainConfig c = TrainConfig::Silent(3);
  c.schedule = LrSchedule::Cosine(0.01, 36).WithWarmup(5);
  ASSERT_TRUE(straight.Train(data, c).ok());

  std::string path = ::testing::TempDir() + "/resume.safetensors";
  {
    Trainer first(s.train.get(), s.eval.get());
    ASSERT_TRUE(first.Initialize(7).ok());
    TrainConfig c1 = c;
    c1.epochs = 1;
    c1.on_epoch = [&](const EpochReport&) { return first.Save(path); };
    ASSERT_TRUE(first.Train(data, c1).ok());
  }
  auto file = LoadSafetensors(path);
  ASSERT_TRUE(file.ok());
  EXPECT_NE(file->Find("fc1.weight/m"), nullptr) << "optimizer state is checkpointed";
  EXPECT_EQ(file->metadata.at("epoch"), "1");
  EXPECT_EQ(file->metadata.at("step"), "12");

  Trainer resumed(s.train.get(), s.eval.get());
  ASSERT_TRUE(resumed.Initialize(999).ok());  // a different seed: Load restores the original
  ASSERT_TRUE(resumed.Load(path).ok());
  EXPECT_EQ(resumed.epoch(), 1);
  EXPECT_EQ(resumed.step(), 12);
  TrainConfig c2 = c;
  c2.epochs = 2;
  ASSERT_TRUE(resumed.Train(data, c2).ok());
  for (const std::string& name : straight.parameter_names()) {
    EXPECT_TRUE(SameBits(straight.parameter(name), resumed.parameter(name))) << name;
  }
}

TEST(WorkflowTest, DivergenceStopsWithTheStepAndTheLastFiniteLoss) {
  // Regression of the label with a learning rate far too large: the loss grows geometrically,
  // overflows to inf and then NaN.
  Graph g;
  Value x = g.Input("x", {8, 16});
  Value y = g.Input("y", {8}, DType::kInt32);
  ModelDef m;
  m.inputs = {x, y};
  m.loss = Mean(SquareErrorCost(Linear(g, "fc", 16, 1)(x), Reshape(ToFloat(y), {8, 1})));
  auto step = CompileTrainStep(g, m, Sgd(50.0), {});
  ASSERT_TRUE(step.ok()) << step.status();
  Trainer t(step->get(), nullptr);
  ASSERT_TRUE(t.Initialize(1).ok());
  auto r = t.Train(Blocks(400, 2), TrainConfig::Silent(5));
  ASSERT_EQ(r.status().code(), absl::StatusCode::kAborted) << r.status();
  std::string msg(r.status().message());
  EXPECT_NE(msg.find("training diverged: the loss is"), std::string::npos) << msg;
  EXPECT_NE(msg.find("last finite loss"), std::string::npos) << msg;
  EXPECT_NE(msg.find("at step "), std::string::npos) << msg;
}

// Trains a model with parallel loops and writes its parameters to $KILN_DETERMINISM_OUT; run by
// SameResultWithOneOrTwoThreads in child processes with different HL_NUM_THREADS.
TEST(DeterminismChild, WriteParameters) {
  const char* out = std::getenv("KILN_DETERMINISM_OUT");
  if (out == nullptr) GTEST_SKIP() << "runs only as a child of SameResultWithOneOrTwoThreads";
  Steps s = Compile(Adam(1e-3), /*in=*/256, /*hidden=*/128, /*batch=*/64);
  ASSERT_TRUE(s.train && s.eval);
  Trainer t(s.train.get(), s.eval.get());
  ASSERT_TRUE(t.Initialize(3).ok());
  ASSERT_TRUE(t.Train(Blocks(640, 3, 16), TrainConfig::Silent(2)).ok());
  ASSERT_TRUE(t.Save(out).ok());
}

TEST(WorkflowTest, SameResultWithOneOrTwoThreads) {
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  ASSERT_GT(n, 0);
  exe[n] = 0;
  std::string a = ::testing::TempDir() + "/det1.safetensors",
              b = ::testing::TempDir() + "/det2.safetensors";
  for (const auto& [threads, path] : {std::pair<int, std::string>{1, a}, {2, b}}) {
    std::string cmd = "HL_NUM_THREADS=" + std::to_string(threads) +
                      " KILN_DETERMINISM_OUT=" + path + " " + exe +
                      " --gtest_filter=DeterminismChild.WriteParameters > /dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  auto fa = LoadSafetensors(a), fb = LoadSafetensors(b);
  ASSERT_TRUE(fa.ok() && fb.ok());
  ASSERT_EQ(fa->tensors.size(), fb->tensors.size());
  for (size_t i = 0; i < fa->tensors.size(); ++i) {
    EXPECT_TRUE(SameBits(fa->tensors[i].second, fb->tensors[i].second)) << fa->tensors[i].first;
  }
}

TEST(WorkflowTest, ValidationEveryEpochPicksTheBestEpochAndReportsLoss) {
  Steps s = Compile(Adam(0.01));
  ASSERT_TRUE(s.train && s.eval);
  Trainer t(s.train.get(), s.eval.get());
  ASSERT_TRUE(t.Initialize(5).ok());
  Dataset val = Blocks(23, 9);
  TrainConfig c = TrainConfig::Silent(3);
  c.validation = &val;
  int calls = 0;
  c.on_epoch = [&](const EpochReport& r) {
    EXPECT_EQ(r.epoch, calls++);
    EXPECT_GE(r.val_accuracy, 0.0);
    EXPECT_GT(r.val_loss, 0.0);
    EXPECT_GE(r.train_accuracy, 0.0);
    return absl::OkStatus();
  };
  auto st = t.Train(Blocks(160, 4), c);
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(calls, 3);
  ASSERT_EQ(st->epochs.size(), 3u);
  int best = 0;
  for (int e = 1; e < 3; ++e) {
    if (st->epochs[e].val_accuracy > st->epochs[best].val_accuracy) best = e;
  }
  EXPECT_EQ(st->best_epoch, best);
  // An error from the epoch callback stops training and is returned.
  c.on_epoch = [](const EpochReport&) { return absl::InternalError("disk full"); };
  EXPECT_EQ(t.Train(Blocks(160, 4), c).status().message(), "disk full");
}

TEST(WorkflowTest, ScheduleFeedsTheLearningRate) {
  Steps s = Compile(Sgd(0.5));
  ASSERT_TRUE(s.train && s.eval);
  Trainer t(s.train.get(), s.eval.get());
  ASSERT_TRUE(t.Initialize(1).ok());
  TrainConfig c = TrainConfig::Silent(2);
  c.schedule = LrSchedule::Step(0.5, 1, 0.1);
  auto st = t.Train(Blocks(80, 1), c);
  ASSERT_TRUE(st.ok());
  EXPECT_DOUBLE_EQ(st->epochs[0].lr, 0.5);
  EXPECT_NEAR(st->epochs[1].lr, 0.05, 1e-12);
}

ModelDef RegularizedMlp(Graph& g, int64_t batch) {
  Value x = g.Input("x", {batch, 16});
  Value y = g.Input("y", {batch}, DType::kInt32);
  BatchNorm bn(g, "bn", 32);
  Value h = Dropout(Relu(bn(Linear(g, "fc1", 16, 32)(x))), 0.3, 5);
  Value logits = Linear(g, "fc2", 32, 4)(h);
  ModelDef m;
  m.inputs = {x, y};
  m.loss = Mean(SoftmaxCrossEntropy(logits, y));
  m.eval_outputs = {{"prediction", ArgMax(logits, 1)}};
  return m;
}

TEST(WorkflowTest, BatchNormAndDropoutTrainEvaluateCheckpointAndResumeExactly) {
  Graph tg, eg(Mode::kEval), wrong;
  auto train = CompileTrainStep(tg, RegularizedMlp(tg, 8), Sgd(0.1), {});
  ASSERT_TRUE(train.ok()) << train.status();
  auto eval = CompileEvalStep(eg, RegularizedMlp(eg, 5), {});
  ASSERT_TRUE(eval.ok()) << eval.status();
  auto refused = CompileEvalStep(wrong, RegularizedMlp(wrong, 5), {});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  // The step number drives the dropout mask, so the step takes it even with plain SGD.
  EXPECT_GE((*train)->signature().FindInput(ArgRole::kHyper, kStepHyper), 0);
  EXPECT_GE((*eval)->signature().FindInput(ArgRole::kState, "bn.running_var"), 0);

  Dataset data = Blocks(96, 6);
  Trainer straight(train->get(), eval->get());
  ASSERT_TRUE(straight.Initialize(2).ok());
  ASSERT_TRUE(straight.Train(data, TrainConfig::Silent(2)).ok());
  const Tensor& rv = straight.parameter("bn.running_var");
  const Tensor& rm = straight.parameter("bn.running_mean");
  EXPECT_NE(rv.data<float>()[0], 1.0f) << "running variance updated";
  EXPECT_NE(rm.data<float>()[0], 0.0f) << "running mean updated";
  auto r = straight.Evaluate(Blocks(40, 8));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->accuracy(), 0.5);

  std::string path = ::testing::TempDir() + "/bn.safetensors";
  Trainer first(train->get(), eval->get());
  ASSERT_TRUE(first.Initialize(2).ok());
  TrainConfig c1 = TrainConfig::Silent(1);
  c1.on_epoch = [&](const EpochReport&) { return first.Save(path); };
  ASSERT_TRUE(first.Train(data, c1).ok());
  Trainer resumed(train->get(), eval->get());
  ASSERT_TRUE(resumed.Initialize(3).ok());
  ASSERT_TRUE(resumed.Load(path).ok());
  ASSERT_TRUE(resumed.Train(data, TrainConfig::Silent(1)).ok());
  for (const char* name : {"fc1.weight", "fc2.weight", "bn.weight"}) {
    EXPECT_TRUE(SameBits(straight.parameter(name), resumed.parameter(name))) << name;
  }
  EXPECT_TRUE(SameBits(rv, resumed.parameter("bn.running_var")));
}

// The runtime binds by role and kind: the compiled signature says what every argument means and
// links each optimizer slot to its parameter and each new value to the input it replaces.
TEST(WorkflowTest, SignatureCarriesKindsAndLinks) {
  Steps s = Compile(Adam(0.01));
  ASSERT_TRUE(s.train && s.eval);
  const Signature& sig = s.train->signature();
  ASSERT_TRUE(sig.Validate().ok()) << sig.Validate();
  EXPECT_EQ(sig.inputs[sig.FindInput(ArgKind::kExample)].name, "x");
  EXPECT_EQ(sig.inputs[sig.FindInput(ArgKind::kTarget)].name, "y");
  EXPECT_EQ(sig.inputs[sig.FindInput(ArgKind::kLearningRate)].name, "lr");
  EXPECT_GE(sig.FindInput(ArgKind::kStep), 0);
  EXPECT_EQ(sig.outputs[sig.FindOutput(ArgKind::kCorrectCount)].name, "correct");
  int slots = 0, updates = 0;
  for (const ArgSpec& a : sig.inputs) {
    if (a.role != ArgRole::kState) continue;
    ++slots;
    ASSERT_GE(a.param, 0) << a.name;
    EXPECT_EQ(a.name.rfind(sig.inputs[a.param].name + "/", 0), 0u) << a.name;
  }
  for (const ArgSpec& a : sig.outputs) {
    if (a.role != ArgRole::kNewParam && a.role != ArgRole::kNewState) continue;
    ++updates;
    EXPECT_EQ(sig.inputs[a.updates].name, a.name);
  }
  EXPECT_EQ(slots, 8);     // m and v of 4 parameters
  EXPECT_EQ(updates, 12);  // 4 parameters and their 8 slots
  const Signature& eval = s.eval->signature();
  EXPECT_EQ(eval.outputs[eval.FindOutput(ArgKind::kPrediction)].name, "prediction");
  EXPECT_EQ(eval.outputs[eval.FindOutput(ArgKind::kExampleLoss)].name, "loss");
  // A broken link is refused.
  Signature broken = sig;
  broken.outputs.back().updates = sig.FindInput(ArgKind::kExample);
  EXPECT_NE(broken.Validate().message().find("of another role, type or shape"), std::string::npos);
}

// Data beyond MNIST: float examples of another shape, float regression targets; evaluation of a
// regression model reports its mean loss, no accuracy.
TEST(WorkflowTest, TrainsARegressionOnFloatExamplesOfAnotherShape) {
  Dataset data;
  data.count = 128;
  data.example_shape = {3, 2};
  data.target_shape = {2};
  Rng rng(5);
  for (int64_t i = 0; i < data.count; ++i) {
    float x[6];
    for (float& v : x) v = static_cast<float>(rng.Uniform() * 2 - 1);
    data.values.insert(data.values.end(), x, x + 6);
    data.targets.push_back(x[0] - 2 * x[3] + 0.5f * x[5]);
    data.targets.push_back(x[1] + x[2] - x[4]);
  }
  auto model = [](Graph& g, int64_t batch) {
    Value x = g.Input("x", {batch, 3, 2});
    Value y = g.Input("y", {batch, 2});
    Value pred = Linear(g, "fc", 6, 2)(Flatten(x));
    Value per_example = Sum(Square(pred - y), {1});
    ModelDef m;
    m.inputs = {x, y};
    m.example = x;
    m.target = y;
    m.loss = Mean(per_example);
    m.eval_outputs = {{"loss", per_example}};
    return m;
  };
  Graph tg, eg(Mode::kEval);
  auto train = CompileTrainStep(tg, model(tg, 16), Adam(0.05), {});
  auto eval = CompileEvalStep(eg, model(eg, 50), {});
  ASSERT_TRUE(train.ok()) << train.status();
  ASSERT_TRUE(eval.ok()) << eval.status();
  EXPECT_EQ((*train)->signature().inputs[1].kind, ArgKind::kTarget);
  Trainer t(train->get(), eval->get());
  ASSERT_TRUE(t.Initialize(1).ok());
  absl::StatusOr<EvalResult> before = t.Evaluate(data);
  ASSERT_TRUE(before.ok()) << before.status();
  absl::StatusOr<TrainStats> stats = t.Train(data, TrainConfig::Silent(40));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->epochs.back().train_accuracy, -1);  // no accuracy for a regression
  absl::StatusOr<EvalResult> after = t.Evaluate(data);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_FALSE(after->classification);
  EXPECT_EQ(after->count, 128);  // the last partial batch of 50 included
  EXPECT_TRUE(after->confusion.empty());
  EXPECT_GT(before->mean_loss, 0.5);
  EXPECT_LT(after->mean_loss, 1e-3) << "before training: " << before->mean_loss;
}

TEST(WorkflowTest, ClassifiesFloatExamples) {
  Dataset data;  // 3 classes: which of 5 features is largest, among the first 3
  data.count = 240;
  data.example_shape = {5};
  Rng rng(9);
  for (int64_t i = 0; i < data.count; ++i) {
    const int label = static_cast<int>(rng.Next() % 3);
    for (int f = 0; f < 5; ++f) {
      data.values.push_back(static_cast<float>(rng.Uniform()) + (f == label ? 1.0f : 0.0f));
    }
    data.labels.push_back(label);
  }
  auto model = [](Graph& g, int64_t batch) {
    Value x = g.Input("features", {batch, 5});
    Value y = g.Input("class", {batch}, DType::kInt32);
    Value logits = Linear(g, "fc", 5, 3)(x);
    ModelDef m;
    m.inputs = {x, y};
    m.loss = Mean(SoftmaxCrossEntropy(logits, y));
    m.metrics = {{"correct", AccuracyCount(logits, y)}};
    m.eval_outputs = {{"prediction", ArgMax(logits, 1)}};
    return m;
  };
  Graph tg, eg(Mode::kEval);
  auto train = CompileTrainStep(tg, model(tg, 24), Adam(0.05), {});
  auto eval = CompileEvalStep(eg, model(eg, 100), {});
  ASSERT_TRUE(train.ok() && eval.ok());
  Trainer t(train->get(), eval->get());
  ASSERT_TRUE(t.Initialize(2).ok());
  ASSERT_TRUE(t.Train(data, TrainConfig::Silent(30)).ok());
  absl::StatusOr<EvalResult> r = t.Evaluate(data);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->classification);
  EXPECT_GE(r->accuracy(), 0.95);
  // The same examples as uint8 pixels normalize into the float input; a wrong shape is refused.
  Dataset bytes = data;
  bytes.values.clear();
  bytes.pixels.assign(data.values.size(), 0);
  EXPECT_TRUE(t.Evaluate(bytes).ok());  // pixels normalize into a float input
  Dataset wrong = data;
  wrong.example_shape = {4};
  EXPECT_NE(t.Evaluate(wrong).status().message().find("expected 240 x [4] = 960 example values"),
            std::string::npos);
}

TEST(LrScheduleTest, Values) {
  EXPECT_DOUBLE_EQ(LrSchedule::Constant(0.1).At(100, 3), 0.1);
  EXPECT_NEAR(LrSchedule::Step(0.1, 2, 0.5).At(0, 3), 0.05, 1e-15);
  EXPECT_NEAR(LrSchedule::Exponential(0.1, 0.9).At(0, 2), 0.081, 1e-15);
  LrSchedule cos = LrSchedule::Cosine(1.0, 100);
  EXPECT_DOUBLE_EQ(cos.At(0, 0), 1.0);
  EXPECT_NEAR(cos.At(50, 0), 0.5, 1e-12);
  EXPECT_NEAR(cos.At(100, 0), 0.0, 1e-12);
  EXPECT_NEAR(cos.WithWarmup(10).At(4, 0), 0.5 * cos.At(4, 0), 1e-12);
  auto p = ParseLrSchedule("cosine:0.001,warmup:20", 0.1, 500);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->kind, LrSchedule::Kind::kCosine);
  EXPECT_EQ(p->warmup_steps, 20);
  EXPECT_EQ(p->total_steps, 500);
  auto bad = ParseLrSchedule("step:0:0.5", 0.1, 1);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(
      bad.status().message().find("EVERY_EPOCHS of step:EVERY_EPOCHS:GAMMA must be >= 1, got 0"),
      std::string::npos)
      << bad.status();
  EXPECT_NE(ParseLrSchedule("cosine,warmup:600", 0.1, 500)
                .status()
                .message()
                .find("warm-up of 600 steps must be in [0, 500]"),
            std::string::npos);
  EXPECT_NE(
      ParseLrSchedule("exp:-1", 0.1, 5).status().message().find("GAMMA must be finite and > 0"),
      std::string::npos);
  EXPECT_NE(
      ParseLrSchedule("cosine:0.5", 0.1, 5).status().message().find("MIN_LR must be in [0, 0.1]"),
      std::string::npos);
  EXPECT_NE(ParseLrSchedule("cosine", -0.1, 5).status().message().find("learning rate"),
            std::string::npos);
  EXPECT_TRUE(ParseLrSchedule("cosine:0", 0.1, 5).ok());  // decaying to 0 is fine
}

// Each nonsensical setting is refused before any step runs, naming the field and its range.
TEST(WorkflowTest, TrainRefusesNonsensicalSettings) {
  Steps s = Compile(Sgd(0.1));
  ASSERT_TRUE(s.train && s.eval);
  Dataset data = Blocks(96, 1);
  Trainer t(s.train.get(), s.eval.get());
  ASSERT_TRUE(t.Initialize(1).ok());
  auto refused = [&](const TrainConfig& c, const Dataset& d, const std::string& fragment) {
    absl::StatusOr<TrainStats> r = t.Train(d, c);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << fragment;
    EXPECT_NE(r.status().message().find(fragment), std::string::npos) << r.status();
    EXPECT_EQ(t.step(), 0);
  };
  TrainConfig c = TrainConfig::Silent(1);
  c.epochs = -1;
  refused(c, data, "TrainConfig.epochs must be >= 0, got -1");
  c = TrainConfig::Silent(1);
  refused(c, Blocks(5, 1), "the training batch (8) is larger than the data set (5 examples)");
  for (double lr : {0.0, -1.0, std::nan(""), HUGE_VAL}) {
    c = TrainConfig::Silent(1);
    c.hyper["lr"] = lr;
    refused(c, data, "expected a finite learning rate > 0");
  }
  c = TrainConfig::Silent(1);
  c.schedule = LrSchedule::Constant(0.1).WithWarmup(13);  // 1 epoch = 12 steps
  refused(c, data, "warm-up of 13 steps must be in [0, 12]");
  c = TrainConfig::Silent(1);
  c.random_shift = 2;
  Dataset flat = data;
  flat.example_shape = {16};
  refused(c, flat, "random_shift=2 shifts 2-D images [height, width]; these examples are [16]");
  c.random_shift = 4;
  refused(c, data, "random_shift must be in [0, 3] for [4, 4] images, got 4");
}

TEST(WorkflowTest, PredictNamesTheExpectedAndTheGivenSize) {
  Steps s = Compile(Sgd(0.1));
  ASSERT_TRUE(s.train && s.eval);
  Trainer t(s.train.get(), s.eval.get());
  ASSERT_TRUE(t.Initialize(1).ok());
  absl::StatusOr<int32_t> p = t.Predict(std::vector<float>(3, 0.5f));
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(p.status().message().find("expected 16 values per example"), std::string::npos)
      << p.status();
  EXPECT_NE(p.status().message().find("got 3"), std::string::npos) << p.status();
  EXPECT_TRUE(t.Predict(std::vector<float>(16, 0.5f)).ok());
}

// The documented sequence: an evaluation step, a Trainer without a training step, Load, Evaluate.
TEST(WorkflowTest, EvaluatingACheckpointNeedsNoTrainingStepAndNoInitialize) {
  Steps s = Compile(Adam(0.01));
  ASSERT_TRUE(s.train && s.eval);
  Dataset data = Blocks(96, 1), test = Blocks(40, 2);
  Trainer trained(s.train.get(), s.eval.get());
  ASSERT_TRUE(trained.Initialize(3).ok());
  ASSERT_TRUE(trained.Train(data, TrainConfig::Silent(2)).ok());
  const std::string path = ::testing::TempDir() + "/evaluate_only.safetensors";
  ASSERT_TRUE(trained.Save(path).ok());
  absl::StatusOr<EvalResult> want = trained.Evaluate(test);
  ASSERT_TRUE(want.ok());

  Trainer reader(/*train=*/nullptr, s.eval.get());
  EXPECT_EQ(reader.Evaluate(test).status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(reader.Load(path).ok());
  absl::StatusOr<EvalResult> got = reader.Evaluate(test);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->correct, want->correct);
  EXPECT_EQ(got->confusion, want->confusion);
  EXPECT_EQ(reader.step(), trained.step());
}

// A stop request (what the driver's SIGINT handler sets) ends training after the current step,
// inside an epoch; the checkpoint then resumes from the next batch, bit for bit.
TEST(WorkflowTest, StoppingInsideAnEpochResumesBitExactly) {
  Steps s = Compile(Adam(0.01));
  ASSERT_TRUE(s.train && s.eval);
  Dataset data = Blocks(96, 1);  // 12 batches per epoch
  TrainConfig c = TrainConfig::Silent(3);
  c.schedule = LrSchedule::Cosine(0.01, 36).WithWarmup(5);
  c.random_shift = 1;
  Trainer straight(s.train.get(), s.eval.get());
  ASSERT_TRUE(straight.Initialize(7).ok());
  ASSERT_TRUE(straight.Train(data, c).ok());

  const std::string path = ::testing::TempDir() + "/interrupted.safetensors";
  std::atomic<bool> stop{false};
  {
    Trainer first(s.train.get(), s.eval.get());
    ASSERT_TRUE(first.Initialize(7).ok());
    TrainConfig c1 = c;
    c1.log_every = 1;
    c1.on_log = [&](const LossPoint& p) {
      if (p.step == 17) stop.store(true);  // epoch 2, batch 5
    };
    c1.stop = &stop;
    absl::StatusOr<TrainStats> st = first.Train(data, c1);
    ASSERT_TRUE(st.ok()) << st.status();
    EXPECT_TRUE(st->interrupted);
    EXPECT_EQ(first.step(), 17);
    EXPECT_EQ(first.epoch(), 1);
    EXPECT_EQ(first.batch_in_epoch(), 5);
    ASSERT_TRUE(first.Save(path).ok());
  }
  Trainer resumed(s.train.get(), s.eval.get());
  ASSERT_TRUE(resumed.Load(path).ok());
  EXPECT_EQ(resumed.batch_in_epoch(), 5);
  TrainConfig c2 = c;
  c2.epochs = 2;  // the rest of epoch 2, then epoch 3
  absl::StatusOr<TrainStats> st = resumed.Train(data, c2);
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->steps, 36 - 17);
  EXPECT_EQ(resumed.step(), 36);
  for (const std::string& name : straight.parameter_names()) {
    EXPECT_TRUE(SameBits(straight.parameter(name), resumed.parameter(name))) << name;
  }
}

}  // namespace
}  // namespace kiln
