// Data-parallel training checks, run under mpirun (tests/CMakeLists.txt, label "dist"): every rank
// runs this program; rank 0 also trains the single-process reference and compares. Exit code 0
// when every check passes, on every rank; 1 otherwise, with the failures on stderr.
//
//   mpirun -n N dist_worker equivalence MODEL OPTIMIZER STEPS BATCH EXAMPLES
//     N ranks x BATCH against one process x N*BATCH over the first EXAMPLES training images
//     (MODEL mlp, mlp_dropout, cnn or cnn_bn; OPTIMIZER sgd or adam): first-step loss and
//     gradients, the loss curve and the parameters after STEPS steps; every rank's parameters and
//     state identical; a second run from the same seed bitwise equal to the first.
//   mpirun -n N dist_worker allreduce FLOATS REPETITIONS
//     the median time of one sum of FLOATS floats (bench/dist.sh).
//   mpirun -n N dist_worker resume BATCH EXAMPLES CHECKPOINT
//     a checkpoint taken inside an epoch continues bitwise at the same global batch, and at
//     another global batch resumes at the next epoch boundary.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/sha256.h"
#include "compiler/cache.h"
#include "compiler/model.h"
#include "compiler/optimizer.h"
#include "dsl/api.h"
#include "examples/models.h"
#include "runtime/communicator.h"
#include "runtime/idx.h"
#include "runtime/trainer.h"
#include "runtime/two_phase_step.h"

namespace kiln {
namespace {

int failures = 0;
Communicator* g_comm = nullptr;

void Fail(const std::string& what) {
  std::fprintf(stderr, "[rank %d] FAIL: %s\n", g_comm ? g_comm->rank() : 0, what.c_str());
  ++failures;
}
#define CHECK_OK(expr)                                                                \
  do {                                                                                \
    absl::Status s_ = (expr);                                                         \
    if (!s_.ok()) {                                                                   \
      std::fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, s_.ToString().c_str()); \
      std::exit(1);                                                                   \
    }                                                                                 \
  } while (0)

template <typename T>
T OrDie(absl::StatusOr<T> v, const char* what) {
  if (!v.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, v.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(*v);
}

Dataset FirstExamples(const Dataset& d, int64_t n) {
  Dataset out;
  out.count = n;
  out.example_shape = d.example_shape;
  out.pixels.assign(d.pixels.begin(), d.pixels.begin() + n * d.example_size());
  out.labels.assign(d.labels.begin(), d.labels.begin() + n);
  return out;
}

ModelDef Build(const std::string& model, Graph& g, int64_t batch) {
  if (model == "mlp") return examples::MnistMlp(g, batch);
  if (model == "cnn") return examples::MnistCnn(g, batch);
  if (model == "cnn_bn") return examples::MnistCnnBn(g, batch);
  if (model == "mlp_dropout") {  // dropout's masks must hash global positions
    Value image = g.Input("image", {batch, 784}, DType::kUInt8);
    Value label = g.Input("label", {batch}, DType::kInt32);
    Value x = ToFloat(image) * (1.0 / 255);
    Value h = Dropout(Relu(Linear(g, "fc1", 784, 64)(x)), 0.5, /*seed=*/5);
    return examples::Classifier(image, label, Linear(g, "fc2", 64, 10)(h));
  }
  std::fprintf(stderr, "unknown model %s\n", model.c_str());
  std::exit(2);
}

std::unique_ptr<Optimizer> MakeOpt(const std::string& name) {
  if (name == "sgd") return std::make_unique<Sgd>(0.05);
  if (name == "adam") return std::make_unique<Adam>(1e-3);
  std::fprintf(stderr, "unknown optimizer %s\n", name.c_str());
  std::exit(2);
}

// "resident": the training set stays on the (emulated) device, gathered by the step.
bool g_resident = false;

std::unique_ptr<Executable> Compile(const std::string& model, const std::string& opt, int64_t batch,
                                    int64_t examples) {
  Graph g(Mode::kTrain);
  ModelDef m = Build(model, g, batch);
  CompileOptions o;
  o.two_phase = true;
  if (g_resident) o.resident_examples = examples;
  o.cache_dir = DefaultCacheDir();
  return OrDie(CompileTrainStep(g, m, *MakeOpt(opt), o), "compile");
}

// Every parameter and state tensor (buffers too), by name.
std::vector<std::pair<std::string, Tensor>> State(const Trainer& t, const Executable& step) {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const ArgSpec& a : step.signature().inputs) {
    if (a.role == ArgRole::kParam ||
        (a.role == ArgRole::kState && a.kind != ArgKind::kRunningSum)) {
      out.push_back({a.name, t.parameter(a.name)});
    }
  }
  return out;
}

std::string Digest(const std::vector<std::pair<std::string, Tensor>>& state) {
  std::string all;
  for (const auto& [name, t] : state) {
    all += name;
    all.append(static_cast<const char*>(t.raw()), static_cast<size_t>(t.bytes()));
  }
  return Sha256Hex(all);
}

// Largest |a - b| / (rel * |b| + abs) over two tensors (<= 1: within tolerance).
double Excess(const Tensor& a, const Tensor& b, double rel, double abs, double* max_rel) {
  double worst = 0;
  for (int64_t i = 0; i < a.size(); ++i) {
    const double x = a.At(i), y = b.At(i), d = std::fabs(x - y);
    worst = std::max(worst, d / (rel * std::fabs(y) + abs));
    if (max_rel && std::fabs(y) > 1e-3) *max_rel = std::max(*max_rel, d / std::fabs(y));
  }
  return worst;
}

// Every rank's digest equal to rank 0's.
void CheckSameEverywhere(Communicator& comm, const std::string& digest, const char* what) {
  std::vector<char> all(64 * comm.size());
  CHECK_OK(comm.AllGather(digest.data(), 64, all.data()));
  for (int r = 1; r < comm.size(); ++r) {
    if (std::memcmp(all.data(), all.data() + 64 * r, 64) != 0) {
      Fail(absl::StrCat(what, ": rank ", r, " differs from rank 0"));
    }
  }
}

struct Run {
  std::vector<double> losses;
  Tensor first_gradients;  // the global batch's gradient after step 1
  std::vector<std::pair<std::string, Tensor>> state;
};

Run TrainSteps(Trainer& t, Executable& step, const Dataset& data, int64_t steps, int ranks) {
  Run run;
  TrainConfig c = TrainConfig::Silent(1000);
  c.log_every = 1;
  c.max_steps = 1;
  TrainStats s1 = OrDie(t.Train(data, c), "train step 1");
  auto& two = static_cast<TwoPhaseStep&>(step);
  CHECK_OK(two.GradientsToHost());
  run.first_gradients = two.gradients();  // summed over the ranks: divide by their number
  for (int64_t i = 0; i < run.first_gradients.size(); ++i) {
    run.first_gradients.Set(i, run.first_gradients.At(i) / ranks);
  }
  c.max_steps = steps - 1;
  TrainStats s2 = OrDie(t.Train(data, c), "train");
  for (const auto* s : {&s1, &s2}) {
    for (const LossPoint& p : s->logged) run.losses.push_back(p.loss);
  }
  run.state = State(t, step);
  return run;
}

int Equivalence(Communicator& comm, const std::string& model, const std::string& opt, int64_t steps,
                int64_t batch, const Dataset& data) {
  const int n = comm.size();
  std::unique_ptr<Executable> step = Compile(model, opt, batch, data.count);
  Trainer t(step.get(), nullptr);
  t.set_communicator(&comm);
  t.set_device_emulation(g_resident);
  CHECK_OK(t.Initialize(7));
  Run dist = TrainSteps(t, *step, data, steps, n);
  CheckSameEverywhere(comm, Digest(dist.state), "parameters and state after training");
  // Same ranks, same seed: bitwise the same run.
  CHECK_OK(t.Initialize(7));
  Run again = TrainSteps(t, *step, data, steps, n);
  if (Digest(again.state) != Digest(dist.state) || again.losses != dist.losses) {
    Fail("a second run with the same ranks and seed is not bitwise equal to the first");
  }
  double result[1] = {0};
  if (comm.rank() == 0 && model != "cnn_bn") {  // batch norm: per-rank statistics, by design
    std::unique_ptr<Executable> ref_step = Compile(model, opt, batch * n, data.count);
    Trainer ref(ref_step.get(), nullptr);
    ref.set_device_emulation(g_resident);
    CHECK_OK(ref.Initialize(7));
    Run one = TrainSteps(ref, *ref_step, data, steps, 1);
    double rel = 0;
    const double loss_rel = std::fabs(dist.losses[0] - one.losses[0]) / std::fabs(one.losses[0]);
    if (loss_rel > 1e-5)
      Fail(absl::StrCat("first-step loss ", dist.losses[0], " vs ", one.losses[0]));
    const double g = Excess(dist.first_gradients, one.first_gradients, 1e-5, 1e-7, &rel);
    if (g > 1) Fail(absl::StrCat("first-step gradients differ: ", g, " x the tolerance"));
    double curve = 0;
    for (size_t i = 0; i < one.losses.size() && i < dist.losses.size(); ++i) {
      curve = std::max(curve, std::fabs(dist.losses[i] - one.losses[i]) / std::fabs(one.losses[i]));
    }
    double p_rel = 0, p_excess = 0;
    for (size_t k = 0; k < one.state.size(); ++k) {
      const double tol = opt == "sgd" ? 1e-4 : 1e-3;  // Adam divides by sqrt(v): less stable
      p_excess =
          std::max(p_excess, Excess(dist.state[k].second, one.state[k].second, tol, tol, &p_rel));
    }
    if (p_excess > 1)
      Fail(absl::StrCat("parameters after ", steps, " steps: ", p_excess, " x the tolerance"));
    if (curve > (opt == "sgd" ? 1e-4 : 1e-3)) Fail(absl::StrCat("loss curve differs by ", curve));
    std::printf(
        "%s %s, %d ranks x %lld vs 1 x %lld: first loss rel diff %.3g, gradients max rel diff "
        "%.3g (excess %.3g), loss curve max rel diff %.3g over %zu steps, parameters max rel diff "
        "%.3g (excess %.3g)\n",
        model.c_str(), opt.c_str(), n, static_cast<long long>(batch),
        static_cast<long long>(batch * n), loss_rel, rel, g, curve, one.losses.size(), p_rel,
        p_excess);
    result[0] = failures;
  }
  CHECK_OK(comm.Broadcast(result, sizeof result, 0));
  return failures + static_cast<int>(result[0]) > 0 ? 1 : 0;
}

int Resume(Communicator& comm, int64_t batch, const Dataset& data, const std::string& path) {
  std::unique_ptr<Executable> step = Compile("mlp", "sgd", batch, data.count);
  Trainer t(step.get(), nullptr);
  t.set_communicator(&comm);
  CHECK_OK(t.Initialize(3));
  TrainConfig c = TrainConfig::Silent(1);
  c.max_steps = 4;
  OrDie(t.Train(data, c), "train");
  if (t.batch_in_epoch() != 4)
    Fail(absl::StrCat("expected 4 batches taken, got ", t.batch_in_epoch()));
  CHECK_OK(t.Save(path));
  char ready = 1;
  std::vector<char> all(comm.size());
  CHECK_OK(comm.AllGather(&ready, 1, all.data()));  // the file is written
  c.max_steps = 3;
  OrDie(t.Train(data, c), "train on");
  const std::string straight = Digest(State(t, *step));
  // The same ranks and global batch: continues inside the epoch, bitwise.
  Trainer same(step.get(), nullptr);
  same.set_communicator(&comm);
  CHECK_OK(same.Load(path));
  OrDie(same.Train(data, c), "train resumed");
  if (Digest(State(same, *step)) != straight || same.batch_in_epoch() != 7) {
    Fail("resumed at the same global batch: not bitwise equal to the run that went straight on");
  }
  // One process (another global batch): the next epoch boundary.
  Trainer alone(step.get(), nullptr);
  CHECK_OK(alone.Load(path));
  c.max_steps = 1;
  OrDie(alone.Train(data, c), "train alone");
  if (comm.size() > 1 && (alone.epoch() != 1 || alone.batch_in_epoch() != 1)) {
    Fail(absl::StrCat("resumed at another global batch: expected epoch index 1, batch 1; got ",
                      alone.epoch(), ", ", alone.batch_in_epoch()));
  }
  double result[1] = {static_cast<double>(failures)};
  CHECK_OK(comm.AllReduceSum(result, 1, ScalarType::kF64));
  if (comm.rank() == 0) std::printf("resume checks: %s\n", result[0] == 0 ? "passed" : "FAILED");
  return result[0] > 0 ? 1 : 0;
}

// The allreduce alone: median microseconds of REPS sums of N floats (bench/dist.sh).
int AllReduceTime(Communicator& comm, int64_t n, int64_t reps) {
  std::vector<float> v(static_cast<size_t>(n), 1.0f);
  std::vector<double> us;
  for (int64_t i = 0; i < reps + 3; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    CHECK_OK(comm.AllReduceSum(v.data(), n, ScalarType::kF32));
    const double t =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    if (i >= 3) us.push_back(t);  // the first few set up the connections
  }
  std::sort(us.begin(), us.end());
  if (comm.rank() == 0) {
    std::printf("allreduce ranks=%d floats=%lld median_us=%.1f\n", comm.size(),
                static_cast<long long>(n), us[us.size() / 2]);
  }
  return 0;
}

int Main(int argc, char** argv) {
  std::unique_ptr<Communicator> comm = OrDie(JoinJob({}), "join");
  g_comm = comm.get();
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "allreduce" && argc == 4) {
    return AllReduceTime(*comm, std::atoll(argv[2]), std::atoll(argv[3]));
  }
  const std::string dir = KILN_TEST_SOURCE_DIR "/data/mnist";
  Dataset train = OrDie(LoadMnist(dir, MnistSplit::kTrain), "MNIST");
  auto num = [&](int i) {
    int64_t v = 0;
    if (i >= argc || !absl::SimpleAtoi(argv[i], &v)) {
      std::fprintf(stderr, "argument %d: expected a number\n", i);
      std::exit(2);
    }
    return v;
  };
  g_resident = argc == 8 && std::string(argv[7]) == "resident";
  if (mode == "equivalence" && (argc == 7 || g_resident)) {
    return Equivalence(*comm, argv[2], argv[3], num(4), num(5), FirstExamples(train, num(6)));
  }
  if (mode == "resume" && argc == 5) {
    return Resume(*comm, num(2), FirstExamples(train, num(3)), argv[4]);
  }
  std::fprintf(stderr,
               "usage: dist_worker equivalence MODEL OPTIMIZER STEPS BATCH EXAMPLES [resident]\n"
               "       dist_worker resume BATCH EXAMPLES CHECKPOINT\n"
               "       dist_worker allreduce FLOATS REPETITIONS\n");
  return 2;
}

}  // namespace
}  // namespace kiln

int main(int argc, char** argv) { return kiln::Main(argc, argv); }
