// Kiln side of bench/run.sh, one model per process (so peak memory is the model's): JIT compile
// time of the training step, steady-state training images/s (median of timed epochs after a
// 200-step warm-up), evaluation images/s on the 10,000 test images (median of 3 passes), effective
// GFLOP/s counted on the model's own shapes, and peak resident memory. One JSON line per model.
// With --first_step_cache=DIR it instead measures how long a process takes from main() to its
// first finished training step when both steps come from (or go into) the compile cache in DIR.
// Timings are reported, never asserted.
//
//   kiln_bench --data_dir=data/mnist --epochs=3 --models=cnn
//   kiln_bench --data_dir=data/mnist --models=cnn --first_step_cache=/tmp/kiln_cache
//   kiln_bench --models=cnn-b128-w32 --steps=50   the tutorial CNN at batch 128 with 32-channel
//                                                 convolutions, rounds of 50 steps, no evaluation
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "compiler/model.h"
#include "dsl/api.h"
#include "examples/models.h"
#include "runtime/idx.h"
#include "runtime/trainer.h"

ABSL_FLAG(std::string, data_dir, "data/mnist", "MNIST directory");
ABSL_FLAG(int32_t, epochs, 3, "timed epochs per model (the median is reported)");
ABSL_FLAG(std::string, models, "linear,softmax,mlp,cnn,lenet5",
          "models to run (also resnet, vit; layernorm: the LayerNorm probe)");
ABSL_FLAG(std::string, layout, "auto",
          "the steps' intermediates: auto, row_major or batch_inner (CompileOptions::layout)");
ABSL_FLAG(bool, fuse_relu_pool, true,
          "max_pool2d(relu(x)) as relu(max_pool2d(x)) (CompileOptions::fuse_relu_pool)");
ABSL_FLAG(bool, example_blocks, true,
          "evaluation in cache-sized blocks of examples (CompileOptions::example_blocks)");
ABSL_FLAG(int32_t, compile_threads, 0,
          "threads that compile a step split into pipelines (CompileOptions::compile_threads; "
          "0: one per core)");
ABSL_FLAG(std::string, target, "host",
          "host or portable (x86-64 AVX2 + FMA), as kiln::ParseTarget");
ABSL_FLAG(int32_t, steps, 0,
          "steps per timed round (and at most 200 of warm-up), training only; 0: whole epochs, "
          "then the evaluation");
ABSL_FLAG(bool, two_phase, false,
          "instead: the two-phase step's cost per step against one pipeline (Adam with clipping)");
ABSL_FLAG(std::string, first_step_cache, "",
          "measure the time from process start to the first training step, with this compile "
          "cache directory");

namespace kiln {
namespace {

const auto kStart = std::chrono::steady_clock::now();
double SinceStart() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - kStart).count();
}

// The benchmark MLP: 784-128-10 (the examples' MLP has a second hidden layer).
ModelDef BenchMlp(Graph& g, int64_t batch) {
  Value image = g.Input("image", {batch, 784}, DType::kUInt8);
  Value label = g.Input("label", {batch}, DType::kInt32);
  Linear::Options relu_init;
  relu_init.weight_init = Initializer::KaimingUniform();
  Value h = Relu(Linear(g, "fc1", 784, 128, relu_init)(UnitPixels(image)));
  return examples::Classifier(image, label, Linear(g, "fc2", 128, 10)(h));
}

struct Bench {
  std::string name;
  std::function<ModelDef(Graph&, int64_t)> build;
  int64_t batch;
  double lr;
  std::string optimizer = "sgd";  // MakeOptimizer's names
  double weight_decay = 0;
  bool (*decays)(const std::string&) = nullptr;  // which parameters decay (all if null)
};

std::unique_ptr<Optimizer> OptimizerOf(const Bench& b) {
  std::unique_ptr<Optimizer> o = *MakeOptimizer(b.optimizer, b.lr);
  if (b.weight_decay > 0) {
    o->WithWeightDecay(b.weight_decay);
    if (b.decays != nullptr) o->WithDecayFilter(b.decays);
  }
  return o;
}

// Floating-point operations per image of the matmuls and convolutions (2 per multiply-add), on the
// model's own shapes: the forward pass, and a training step (forward, weight gradients, and input
// gradients where the input depends on a parameter: never the image's).
struct Flops {
  double forward = 0, train = 0;
};
Flops CountFlops(const Graph& g, int64_t batch) {
  std::vector<bool> learned(g.size(), false);
  Flops f;
  for (const Node& n : g.nodes()) {
    learned[n.id] = n.op == OpKind::kParameter;
    for (int i : n.inputs) learned[n.id] = learned[n.id] || learned[i];
    double ops = 0;
    if (n.op == OpKind::kConv2D) {
      const Shape& w = g.node(n.inputs[1]).shape;  // [out, in, kh, kw]
      ops = 2.0 * NumElements(n.shape) * w[1] * w[2] * w[3];
    } else if (n.op == OpKind::kMatMul) {
      ops = 2.0 * NumElements(n.shape) * g.node(n.inputs[0]).shape.back();
    } else {
      continue;
    }
    f.forward += ops;
    f.train += ops * (1 + learned[n.inputs[1]] + learned[n.inputs[0]]);
  }
  f.forward /= batch;
  f.train /= batch;
  return f;
}

// Seconds since the kernel started this process (exec, dynamic loading of libHalide and LLVM
// included), from /proc; 10 ms resolution. -1 where /proc is unavailable.
double ProcessAge() {
  std::FILE* f = std::fopen("/proc/self/stat", "r");
  std::FILE* u = std::fopen("/proc/uptime", "r");
  double age = -1, uptime = 0;
  char buf[1024];
  if (f && u && std::fgets(buf, sizeof(buf), f) && std::fscanf(u, "%lf", &uptime) == 1) {
    const char* p = std::strrchr(buf, ')');  // the command name may contain spaces
    unsigned long long start = 0;
    for (int field = 2; p && field < 22; ++field) p = std::strchr(p + 1, ' ');
    if (p && std::sscanf(p + 1, "%llu", &start) == 1) {
      age = uptime - static_cast<double>(start) / sysconf(_SC_CLK_TCK);
    }
  }
  if (f) std::fclose(f);
  if (u) std::fclose(u);
  return age;
}

double PeakRssMb() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0;
}

// "cnn-b<batch>-w<width>" (either part may be left out: batch 64, width 20) -> {batch, width}.
absl::StatusOr<std::pair<int64_t, int64_t>> ParseScaledCnn(absl::string_view name) {
  std::pair<int64_t, int64_t> bw = {64, 20};
  for (absl::string_view part : absl::StrSplit(name.substr(4), '-')) {
    int64_t v = 0;
    if (part.size() < 2 || !absl::SimpleAtoi(part.substr(1), &v) || v < 1 ||
        (part[0] != 'b' && part[0] != 'w')) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", name, "': expected cnn-b<batch>-w<width> (e.g. cnn-b128-w32), got part '", part,
          "'"));
    }
    (part[0] == 'b' ? bw.first : bw.second) = v;
  }
  return bw;
}

int Run(const Bench& b, const Dataset& train, const Dataset& test, int epochs) {
  Graph tg, eg(Mode::kEval);
  ModelDef tm = b.build(tg, b.batch);
  const Flops flops = CountFlops(tg, b.batch);
  CompileOptions o;
  o.layout = *ParseLayoutChoice(absl::GetFlag(FLAGS_layout));  // checked in main
  o.fuse_relu_pool = absl::GetFlag(FLAGS_fuse_relu_pool);
  o.example_blocks = absl::GetFlag(FLAGS_example_blocks);
  o.compile_threads = absl::GetFlag(FLAGS_compile_threads);
  o.target = *ParseTarget(absl::GetFlag(FLAGS_target));  // checked in main
  const int steps = absl::GetFlag(FLAGS_steps);
  auto step = CompileTrainStep(tg, tm, *OptimizerOf(b), o);
  absl::StatusOr<std::unique_ptr<Executable>> eval = std::unique_ptr<Executable>();
  if (steps == 0) eval = CompileEvalStep(eg, b.build(eg, 1000), o);
  if (!step.ok() || !eval.ok()) {
    std::fprintf(stderr, "%s: %s\n", b.name.c_str(),
                 std::string((step.ok() ? eval.status() : step.status()).message()).c_str());
    return 1;
  }
  Trainer t(step->get(), eval->get());
  if (!t.Initialize(1).ok()) return 1;
  TrainConfig warm = TrainConfig::Silent(1);
  warm.max_steps = steps > 0 ? std::min(steps, 200) : 200;
  if (!t.Train(train, warm).ok()) return 1;
  std::vector<double> rates, eval_rates;
  for (int e = 0; e < epochs; ++e) {
    TrainConfig c = warm;
    c.max_steps = steps > 0 ? steps : -1;
    auto s = t.Train(train, c);
    if (!s.ok()) return 1;
    rates.push_back(s->images_per_second());
  }
  double accuracy = 0;
  for (int e = 0; e < 3 && steps == 0; ++e) {
    auto r = t.Evaluate(test);
    if (!r.ok()) return 1;
    eval_rates.push_back(r->count / r->seconds);
    accuracy = r->accuracy();
  }
  std::sort(rates.begin(), rates.end());
  std::sort(eval_rates.begin(), eval_rates.end());
  const double train_rate = rates[rates.size() / 2];
  const double eval_rate = eval_rates.empty() ? 0 : eval_rates[1];
  std::printf(
      "{\"peer\": \"kiln\", \"model\": \"%s\", \"batch\": %lld, \"train_images_per_s\": %.0f, "
      "\"eval_images_per_s\": %.0f, \"compile_s\": %.3f, \"eval_compile_s\": %.3f, "
      "\"train_gflops\": %.2f, \"eval_gflops\": %.2f, \"flops_per_image\": %.0f, "
      "\"peak_rss_mb\": %.0f, \"epochs_timed\": %d, \"test_accuracy\": %.4f, "
      "\"optimizer\": \"%s\", \"layout\": \"%s\", \"target\": \"%s\", \"steps\": %d}\n",
      b.name.c_str(), static_cast<long long>(b.batch), train_rate, eval_rate,
      (*step)->compile_seconds(), *eval ? (*eval)->compile_seconds() : 0.0,
      flops.train * train_rate / 1e9, flops.forward * eval_rate / 1e9, flops.train, PeakRssMb(),
      epochs, accuracy, b.optimizer.c_str(), LayoutChoiceName(o.layout).c_str(),
      TargetName(o.target).c_str(), steps);
  std::fflush(stdout);
  return 0;
}

// The two-phase step's cost: the same model and optimizer (Adam, with clipping: the update reads
// every gradient twice) compiled as one pipeline and as two, trained in alternating epochs (one
// each, `epochs` times) after a warm-up, median microseconds per step of each.
int TwoPhaseCost(const Bench& b, const Dataset& train, int epochs) {
  Graph g1, g2, eg(Mode::kEval);
  Adam adam(1e-3);
  adam.WithClipGlobalNorm(5.0);
  CompileOptions two;
  two.two_phase = true;
  auto one_step = CompileTrainStep(g1, b.build(g1, b.batch), adam, {});
  auto two_step = CompileTrainStep(g2, b.build(g2, b.batch), adam, two);
  if (!one_step.ok() || !two_step.ok()) return 1;
  Trainer t1(one_step->get(), nullptr), t2(two_step->get(), nullptr);
  if (!t1.Initialize(1).ok() || !t2.Initialize(1).ok()) return 1;
  TrainConfig c = TrainConfig::Silent(1);
  c.max_steps = 200;
  if (!t1.Train(train, c).ok() || !t2.Train(train, c).ok()) return 1;
  c.max_steps = -1;
  std::vector<double> us[2];
  for (int e = 0; e < epochs; ++e) {
    Trainer* ts[2] = {&t1, &t2};
    for (int k = 0; k < 2; ++k) {
      auto s = ts[k]->Train(train, c);
      if (!s.ok()) return 1;
      us[k].push_back(1e6 * s->seconds / static_cast<double>(s->steps));
    }
  }
  for (auto& v : us) std::sort(v.begin(), v.end());
  std::printf(
      "{\"peer\": \"kiln\", \"model\": \"%s\", \"probe\": \"two_phase\", \"batch\": %lld, "
      "\"one_pipeline_us\": %.1f, \"two_phase_us\": %.1f, \"compile_s_one\": %.2f, "
      "\"compile_s_two\": %.2f}\n",
      b.name.c_str(), static_cast<long long>(b.batch), us[0][us[0].size() / 2],
      us[1][us[1].size() / 2], (*one_step)->compile_seconds(), (*two_step)->compile_seconds());
  std::fflush(stdout);
  return 0;
}

// From process start: data loaded, both steps ready (compiled or loaded from `cache_dir`), the
// parameters initialized and one training step run.
int FirstStep(const Bench& b, const Dataset& train, const std::string& cache_dir, double data_s) {
  CompileOptions o;
  o.cache_dir = cache_dir;
  o.compile_threads = absl::GetFlag(FLAGS_compile_threads);
  Graph tg, eg(Mode::kEval);
  const double t0 = SinceStart();
  auto steps = CompileTrainAndEvalSteps(tg, b.build(tg, b.batch), *OptimizerOf(b), o, eg,
                                        b.build(eg, 1000), o);
  if (!steps.ok()) return 1;
  const double ready = SinceStart() - t0;
  Trainer t(steps->train.get(), steps->eval.get());
  if (!t.Initialize(1).ok()) return 1;
  TrainConfig one = TrainConfig::Silent(1);
  one.max_steps = 1;
  if (!t.Train(train, one).ok()) return 1;
  std::printf(
      "{\"peer\": \"kiln\", \"model\": \"%s\", \"probe\": \"first_step\", \"cached\": %s, "
      "\"data_load_s\": %.3f, \"steps_ready_s\": %.3f, \"first_step_done_s\": %.3f, "
      "\"process_age_s\": %.2f}\n",
      b.name.c_str(), steps->train->compile_seconds() == 0 ? "true" : "false", data_s, ready,
      SinceStart(), ProcessAge());
  return 0;
}

// LayerNorm forward + backward on [rows, 64] (the ViT's 64 x 17 tokens): x and the affine
// parameters are a step's parameters, loss = sum(LayerNorm(x) * r) with r a fixed input, SGD at
// learning rate 0 (the update adds one pass over x, gamma and beta). Median microseconds per step
// over `reps` steps, after 50 of warm-up.
int LayerNormProbe(int64_t rows, int reps) {
  Graph g;
  Value x = g.Parameter("x", {rows, 64}, Initializer::Normal(0, 1));
  Value r = g.Input("r", {rows, 64});
  ModelDef m;
  m.inputs = {r};
  m.example = r;
  m.loss = Sum(LayerNorm(g, "ln", 64)(x) * r);
  auto step = CompileTrainStep(g, m, Sgd(1), {});  // run with the learning rate input at 0
  if (!step.ok()) {
    std::fprintf(stderr, "layernorm: %s\n", std::string(step.status().message()).c_str());
    return 1;
  }
  const Signature& sig = (*step)->signature();
  std::vector<Tensor> in, out;
  for (const ArgSpec& a : sig.inputs) in.emplace_back(a.type, a.shape);
  for (const ArgSpec& a : sig.outputs) out.emplace_back(a.type, a.shape);
  for (size_t i = 0; i < in.size(); ++i) {
    for (int64_t e = 0; e < in[i].size(); ++e) {
      in[i].data<float>()[e] = static_cast<float>(std::sin(0.37 * e + static_cast<double>(i)));
    }
    if (sig.inputs[i].kind == ArgKind::kLearningRate) in[i].data<float>()[0] = 0;
  }
  std::vector<TensorRef> ir, orf;
  for (Tensor& t : in) ir.push_back(t.ref());
  for (Tensor& t : out) orf.push_back(t.ref());
  std::vector<double> us;
  for (int k = 0; k < 50 + reps; ++k) {
    const auto t0 = std::chrono::steady_clock::now();
    if (!(*step)->Run(ir, orf).ok()) return 1;
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (k >= 50) us.push_back(1e6 * t);
  }
  std::sort(us.begin(), us.end());
  std::printf(
      "{\"peer\": \"kiln\", \"probe\": \"layernorm\", \"rows\": %lld, \"median_us\": "
      "%.2f}\n",
      static_cast<long long>(rows), us[us.size() / 2]);
  std::fflush(stdout);
  return 0;
}

}  // namespace
}  // namespace kiln

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  using namespace kiln;
  if (absl::Status st = ParseLayoutChoice(absl::GetFlag(FLAGS_layout)).status(); !st.ok()) {
    std::fprintf(stderr, "error: --layout: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  if (absl::StatusOr<TargetSpec> t = ParseTarget(absl::GetFlag(FLAGS_target));
      !t.ok() || t->device != Device::kCpu) {
    std::fprintf(stderr, "error: --target=%s: a CPU target is expected (host or portable)\n",
                 absl::GetFlag(FLAGS_target).c_str());
    return 1;
  }
  if (absl::GetFlag(FLAGS_steps) < 0) {
    std::fprintf(stderr, "error: --steps=%d: expected 0 (whole epochs) or more\n",
                 absl::GetFlag(FLAGS_steps));
    return 1;
  }
  auto mnist = LoadMnistTrainAndTest(absl::GetFlag(FLAGS_data_dir));
  if (!mnist.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(mnist.status().message()).c_str());
    return 1;
  }
  const double data_s = SinceStart();
  const std::vector<Bench> all = {
      {"linear", examples::MnistLinear, 16, 0.001},
      {"softmax", examples::MnistSoftmax, 64, 0.2},
      {"mlp", BenchMlp, 64, 0.1},
      {"cnn", examples::MnistCnn, 64, 0.01},
      {"lenet5", examples::MnistLeNet5, 64, 0.01},
      // The recipes of examples/mnist_resnet.cc and mnist_vit.cc
      // (the peers use the same optimizers), constant rates.
      {"resnet", examples::MnistResNet, 64, 2e-3, "adam"},
      {"vit", examples::MnistVit, 64, 1e-3, "adamw", 0.05, examples::VitDecays}};
  const std::string cache = absl::GetFlag(FLAGS_first_step_cache);
  int rc = 0;
  for (absl::string_view want : absl::StrSplit(absl::GetFlag(FLAGS_models), ',')) {
    if (want == "layernorm") rc |= LayerNormProbe(1088, 2000);
    std::vector<Bench> scaled;
    if (absl::StartsWith(want, "cnn-")) {
      absl::StatusOr<std::pair<int64_t, int64_t>> bw = ParseScaledCnn(want);
      if (!bw.ok()) {
        std::fprintf(stderr, "error: --models: %s\n", std::string(bw.status().message()).c_str());
        return 1;
      }
      const int64_t width = bw->second;
      scaled.push_back(
          {std::string(want),
           [width](Graph& g, int64_t batch) { return examples::MnistCnnOfWidth(g, batch, width); },
           bw->first, 0.01});
    }
    for (const Bench& b : scaled.empty() ? all : scaled) {
      if (b.name != want) continue;
      if (absl::GetFlag(FLAGS_two_phase)) {
        rc |= TwoPhaseCost(b, mnist->train, absl::GetFlag(FLAGS_epochs));
      } else {
        rc |= cache.empty() ? Run(b, mnist->train, mnist->test, absl::GetFlag(FLAGS_epochs))
                            : FirstStep(b, mnist->train, cache, data_s);
      }
    }
  }
  return rc;
}
