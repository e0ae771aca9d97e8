#include "examples/example_main.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/sha256.h"
#include "compiler/cache.h"
#include "runtime/driver.h"

ABSL_FLAG(int64_t, batch_size, 16, "training batch size (compiled into the step)");
ABSL_FLAG(int64_t, eval_batch_size, 1000, "evaluation batch size (the last batch is padded)");
ABSL_FLAG(std::string, optimizer, "sgd",
          "sgd, momentum, nesterov, adagrad, rmsprop, adam or adamw");
ABSL_FLAG(double, weight_decay, 0,
          "L2 weight decay (decoupled for adamw); biases exempt, and whatever else the model "
          "exempts (the ViT: norms and embeddings)");
ABSL_FLAG(double, clip_norm, 0, "clip gradients to this global norm (0: off)");
ABSL_FLAG(std::string, dot, "",
          "write the forward and training graphs as Graphviz DOT to "
          "<dot>_forward.dot and <dot>_train.dot");
ABSL_FLAG(std::string, stmt, "", "write the training step's Halide loop nest (text) to this file");
ABSL_FLAG(bool, dump_graph, false,
          "print the training graph after each compiler pass, and each step's layout plan and "
          "example blocks");
ABSL_FLAG(std::string, layout, "auto",
          "intermediates' layout: auto (batch-inner convolution activations where the batch fills "
          "vectors), row_major (every intermediate row-major), batch_inner");
ABSL_FLAG(bool, example_blocks, true,
          "compute evaluation in cache-sized blocks of examples where every example is computed "
          "on its own (false: each op over the whole batch at once)");
ABSL_FLAG(int64_t, memory_limit_mb, -1,
          "refuse to compile a step whose estimated memory exceeds this (-1: 90% of the "
          "machine's physical memory; 0: no limit)");
ABSL_FLAG(std::string, target, "host",
          "where the steps run: host (this CPU), portable (x86-64 AVX2), host-cuda[:CC] (an NVIDIA "
          "GPU; CC defaults to the device's capability), or auto (host-cuda when a CUDA device "
          "answers, else host)");
ABSL_FLAG(bool, two_phase, false,
          "compile the training step as two pipelines: gradients into one buffer, then the "
          "optimizer update over it (same parameters; what data-parallel training runs)");
ABSL_FLAG(std::string, cache_dir, "auto",
          "compile cache directory ('auto': $KILN_CACHE_DIR if set, else ~/.cache/kiln; empty: "
          "compile in memory on every run)");

namespace kiln::examples {

namespace {

int Run(const DriverOptions& o, const Example& e, Communicator& comm) {
  absl::StatusOr<DriverData> data = LoadDriverData(o);
  if (!data.ok()) return DriverFail(data.status());

  // Everything a user can get wrong is refused here, before seconds of compiling.
  const int64_t batch = absl::GetFlag(FLAGS_batch_size);
  const int64_t eval_batch = absl::GetFlag(FLAGS_eval_batch_size);
  if (eval_batch <= 0) {
    return DriverFail(absl::InvalidArgumentError(
        absl::StrCat("--eval_batch_size must be >= 1, got ", eval_batch)));
  }
  if (absl::Status s = ValidateDriverOptions(o, *data, batch); !s.ok()) return DriverFail(s);
  const std::pair<const char*, double> penalties[] = {
      {"weight_decay", absl::GetFlag(FLAGS_weight_decay)},
      {"clip_norm", absl::GetFlag(FLAGS_clip_norm)}};
  for (const auto& [flag, v] : penalties) {
    if (!std::isfinite(v) || v < 0) {
      return DriverFail(absl::InvalidArgumentError(
          absl::StrCat("--", flag, " must be finite and >= 0 (0: off), got ", v)));
    }
  }
  CompileOptions options;
  std::string target_note;
  absl::StatusOr<TargetSpec> target = ResolveTarget(absl::GetFlag(FLAGS_target), &target_note);
  if (!target.ok()) return DriverFail(target.status());
  std::printf("%s\n", target_note.c_str());
  options.target = *target;
  options.dump_graphs = absl::GetFlag(FLAGS_dump_graph);
  options.stmt_path = absl::GetFlag(FLAGS_stmt);
  absl::StatusOr<LayoutChoice> layout = ParseLayoutChoice(absl::GetFlag(FLAGS_layout));
  if (!layout.ok()) return DriverFail(layout.status());
  options.layout = *layout;
  options.example_blocks = absl::GetFlag(FLAGS_example_blocks);
  // Data-parallel training sums the gradients between the two phases.
  options.two_phase = absl::GetFlag(FLAGS_two_phase) || comm.size() > 1;
  options.cache_dir = absl::GetFlag(FLAGS_cache_dir);
  if (options.cache_dir == "auto") options.cache_dir = DefaultCacheDir();
  const int64_t limit_mb = absl::GetFlag(FLAGS_memory_limit_mb);
  options.memory_limit_bytes =
      limit_mb >= 0 ? limit_mb * 1048576
                    : static_cast<int64_t>(0.9 * sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGESIZE));
  absl::StatusOr<std::unique_ptr<Optimizer>> made =
      MakeOptimizer(absl::GetFlag(FLAGS_optimizer), o.lr);
  if (!made.ok()) return DriverFail(made.status());
  std::unique_ptr<Optimizer> optimizer = std::move(*made);
  if (absl::GetFlag(FLAGS_weight_decay) > 0) {
    optimizer->WithWeightDecay(absl::GetFlag(FLAGS_weight_decay)).WithDecayFilter(e.decays);
  }
  optimizer->WithClipGlobalNorm(absl::GetFlag(FLAGS_clip_norm));

  Graph train_graph(Mode::kTrain), eval_graph(Mode::kEval);
  ModelDef model = e.build(train_graph, batch);
  std::printf("%s", train_graph.Summary().c_str());
  const std::string dot = absl::GetFlag(FLAGS_dot);
  if (!dot.empty()) {
    std::vector<int> roots = {model.loss.id()};
    for (const auto& [name, v] : model.metrics) roots.push_back(v.id());
    if (!train_graph.status().ok()) return DriverFail(train_graph.status());
    std::FILE* f = std::fopen((dot + "_forward.dot").c_str(), "w");
    if (f == nullptr) return DriverFail(absl::NotFoundError(dot + "_forward.dot: cannot open"));
    std::fputs(train_graph.ToDot(roots).c_str(), f);
    std::fclose(f);
    options.dot_path = dot + "_train.dot";
  }
  // Every rank must compile the same step with the same settings, or the collectives would mix
  // buffers of different sizes: compared before any compiling.
  {
    std::vector<int> roots = {model.loss.id()};
    for (const auto& [name, v] : model.metrics) roots.push_back(v.id());
    if (!train_graph.status().ok()) return DriverFail(train_graph.status());
    absl::Status same = CheckDriverJob(
        comm, o,
        {{"--batch_size (per rank)", absl::StrCat(batch)},
         {"--eval_batch_size", absl::StrCat(eval_batch)},
         {"the example shape", ShapeString(data->train.example_shape)},
         {"the training examples", absl::StrCat(data->train.count)},
         {"the model (graph fingerprint)", Sha256Hex(train_graph.Fingerprint(roots)).substr(0, 16)},
         {"the optimizer",
          absl::StrCat(optimizer->name(), " weight_decay=", absl::GetFlag(FLAGS_weight_decay),
                       " clip_norm=", absl::GetFlag(FLAGS_clip_norm))},
         {"--target", absl::GetFlag(FLAGS_target)}});
    if (!same.ok()) return DriverFail(same);
  }
  // On GPUs the ranks sum their gradients with NCCL, in the context Halide then compiles for.
  std::unique_ptr<Communicator> device_comm;
  if (options.target.device == Device::kCuda && comm.size() > 1) {
    absl::StatusOr<std::unique_ptr<Communicator>> d = JoinDeviceCollectives(comm);
    if (!d.ok()) return DriverFail(d.status());
    device_comm = std::move(*d);
  }
  // On a GPU the training set, parameters and optimizer state stay on the device.
  if (options.target.device == Device::kCuda) options.resident_examples = data->train.count;
  CompileOptions eval_options = options;
  eval_options.resident_examples = 0;
  eval_options.two_phase = false;
  eval_options.dot_path.clear();
  eval_options.stmt_path.clear();
  absl::StatusOr<TrainAndEvalSteps> steps =
      CompileTrainAndEvalSteps(train_graph, model, *optimizer, options, eval_graph,
                               e.build(eval_graph, eval_batch), eval_options);
  if (!steps.ok()) return DriverFail(steps.status());
  Executable* train_step = steps->train.get();
  Executable* eval_step = steps->eval.get();
  auto how = [](const Executable& x) {
    return x.compile_seconds() > 0 ? absl::StrFormat("compiled in %.2f s", x.compile_seconds())
                                   : std::string("loaded from the compile cache");
  };
  std::printf("training step (batch %lld) %s, evaluation step (batch %lld) %s\n",
              static_cast<long long>(batch), how(*train_step).c_str(),
              static_cast<long long>(eval_batch), how(*eval_step).c_str());
  DriverInfo info;
  info.name = e.name;
  info.optimizer = optimizer->name();
  info.batch = batch;
  info.compile_s = train_step->compile_seconds();  // 0 when loaded from the cache
  return RunDriver(o, info, *data, train_step, eval_step, &comm, device_comm.get());
}

}  // namespace

int RunExample(int argc, char** argv, const Example& e) {
  absl::SetFlag(&FLAGS_batch_size, e.batch_size);
  absl::SetFlag(&FLAGS_optimizer, e.optimizer);
  absl::SetFlag(&FLAGS_weight_decay, e.weight_decay);
  const DriverOptions o = ParseDriverCommandLine(
      argc, argv, absl::StrCat(e.description, "\nUsage: ", e.name, " [flags]"), {"example_main"},
      {e.name, e.epochs, e.lr, e.lr_schedule, e.random_shift, e.log_every, e.predict});
  absl::StatusOr<std::unique_ptr<Communicator>> comm = JoinDriverJob(o);
  if (!comm.ok()) return DriverFail(comm.status());
  const int code = Run(o, e, **comm);
  return FinishDriverJob(std::move(*comm), code);
}

}  // namespace kiln::examples
