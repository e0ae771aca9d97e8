// From a model definition to compiled steps: the training step (forward, loss, backward, optimizer
// update, metrics) and the evaluation step (forward, per-example outputs), each ONE Halide
// pipeline, or the training step as two (CompileOptions::two_phase).
//
//   kiln::ModelDef BuildSoftmax(kiln::Graph& g, int64_t batch) {
//     kiln::ModelDef m;
//     kiln::Value x = g.Input("image", {batch, 784});
//     kiln::Value y = g.Input("label", {batch}, kiln::DType::kInt32);
//     kiln::Value logits = kiln::Linear(g, "fc", 784, 10)(x);
//     m.inputs = {x, y};
//     m.loss = kiln::Mean(kiln::SoftmaxCrossEntropy(logits, y));
//     m.metrics = {{"correct", kiln::AccuracyCount(logits, y)}};
//     m.eval_outputs = {{"prediction", kiln::ArgMax(logits, 1)}};
//     return m;
//   }
//   kiln::Graph g;
//   auto step = kiln::CompileTrainStep(g, BuildSoftmax(g, 64), kiln::Sgd(0.1), {});
#pragma once

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "compiler/layout.h"
#include "compiler/optimizer.h"
#include "compiler/target.h"
#include "dsl/graph.h"
#include "runtime/executable.h"
#include "runtime/segmented_step.h"

namespace kiln {

// A model as the compiler sees it. What each piece means to the runtime is declared here and
// carried into the compiled step's Signature as ArgKind (the runtime never matches names):
//   - `example` and `target` among `inputs` (unset: inputs[0] is the example and inputs[1], if
//     any, the target: class labels int32 [B] or float regression targets of any shape);
//   - the metric named "correct" counts correctly classified examples (training accuracy);
//   - the eval output named "prediction" is the predicted class (int32 [B]); one named "loss" is
//     the per-example loss (the mean evaluation loss; the only result of a regression model).
struct ModelDef {
  std::vector<Value> inputs;                                // fed per batch, in this order
  Value example, target;                                    // see above; both among `inputs`
  Value loss;                                               // float scalar training objective
  std::vector<std::pair<std::string, Value>> metrics;       // scalars reported by the train step
  std::vector<std::pair<std::string, Value>> eval_outputs;  // per-example outputs, batch first
};
inline constexpr char kCorrectMetric[] = "correct";
inline constexpr char kPredictionOutput[] = "prediction";
inline constexpr char kLossOutput[] = "loss";

struct CompileOptions {
  TargetSpec target;
  bool float64 = false;         // compile the float type as float64 (gradient checks, tests)
  bool dump_graphs = false;     // print the graph after each pass (text) to stderr
  bool plain_schedule = false;  // every Func compute_root, no op schedules (a yardstick in tests)
  std::string dot_path;         // if set, write the final step graph as Graphviz DOT here
  std::string stmt_path;        // if set, write Halide's lowered loop nest (text) here
  // If set, the persistent compile cache's directory (compiler/cache.h; DefaultCacheDir() gives
  // the usual one). Empty: compile in memory with Halide's JIT every time.
  std::string cache_dir;
  // If positive, a step whose estimated memory (arguments plus every intermediate the schedule
  // materializes, as if all were live at once) exceeds this many bytes is refused with the
  // estimate (ResourceExhausted) before anything is compiled.
  int64_t memory_limit_bytes = 0;
  // Halide 14 lowers a pipeline in time that grows faster than linearly with its stages, so a
  // CPU step larger than this many stages (a matmul or convolution counts two, a reduction one,
  // an output one) is compiled as several pipelines of at most about half this size, run in
  // sequence with buffers between them (runtime/segmented_step.h). The tutorial's models (up to
  // 75) stay one pipeline; the ResNet (236) is 5, the ViT (526) 11. 0: always one pipeline.
  int64_t max_pipeline_stages = 100;
  // Resident training (the CUDA path; CPU tests use it too): if positive, the training step
  // takes the whole training set of this many examples (role kDataset, per model input) plus
  // its permutation "order" once per epoch, and gathers rows order[batch_start + i] itself;
  // batch_start is a by-value hyperparameter, and the loss and metrics are also summed into
  // "sum/..." state so the host reads nothing back inside an epoch.
  int64_t resident_examples = 0;
  // The training step as two pipelines run one after the other (runtime/two_phase_step.h): a
  // gradient phase (loss, metrics and every gradient into one contiguous buffer) and an update
  // phase (clipping, weight decay and the optimizer over that buffer, scaled by the runtime
  // hyperparameter "grad_scale"). Between them a caller may read or combine the gradients
  // (data-parallel training sums them across processes). Default: one pipeline.
  bool two_phase = false;
  // The physical layout of the step's intermediates (compiler/layout.h): kAuto plans batch-inner
  // convolution activations where the batch fills vectors (CPU); kRowMajor stores every
  // intermediate row-major (the layout before the planner; --layout=row_major); kBatchInner
  // plans batch-inner whatever the batch (tests). Part of the compile cache's key; arguments
  // are row-major under every choice.
  LayoutChoice layout = LayoutChoice::kAuto;
  // Compute max_pool2d(relu(x)) as relu(max_pool2d(x)) in one gather, so the ReLU and its
  // gradient work on the pooled values (compiler/passes.h FuseReluIntoMaxPool; bitwise the same
  // results). Rewrites the model's graph in place before it is differentiated. false: leave it.
  bool fuse_relu_pool = true;
  // Compute a step with one per-example output (evaluation, inference) in blocks of examples
  // that keep its intermediates in cache (compiler/lower.h ExampleBlock): the tutorial CNN's
  // evaluation at batch 1000 ran 1.8x as fast. The same results, bit for bit. Part of the
  // compile cache's key. false: the whole batch, each op at once.
  bool example_blocks = true;
  // A step compiled as several pipelines (max_pipeline_stages) compiles them on up to this many
  // threads at once; 0: one per core. The compiled code is the same either way (not part of the
  // compile cache's key); only the wall time to compile changes.
  int compile_threads = 0;
};

// Builds the training graph (adds gradient and update nodes to `g`), runs the passes, lowers and
// JIT-compiles it. Errors: the graph's first shape error; autodiff errors; Halide errors
// (Internal).
absl::StatusOr<std::unique_ptr<Executable>> CompileTrainStep(Graph& g, const ModelDef& model,
                                                             const Optimizer& optimizer,
                                                             const CompileOptions& options);

// The evaluation step: inputs and parameters in, eval_outputs (and metrics) out.
absl::StatusOr<std::unique_ptr<Executable>> CompileEvalStep(Graph& g, const ModelDef& model,
                                                            const CompileOptions& options);

// Both steps of one model, from two graphs (the evaluation graph in Mode::kEval). On a CPU target
// they compile at the same time, the evaluation step on a thread of its own (the graphs lower to
// Funcs and Exprs neither shares with the other): the time to both steps is about the longer of
// the two, not their sum. One after the other on a GPU target or when graphs are dumped. The first
// error, the training step's first.
struct TrainAndEvalSteps {
  std::unique_ptr<Executable> train, eval;
};
absl::StatusOr<TrainAndEvalSteps> CompileTrainAndEvalSteps(
    Graph& train_graph, const ModelDef& train_model, const Optimizer& optimizer,
    const CompileOptions& train_options, Graph& eval_graph, const ModelDef& eval_model,
    const CompileOptions& eval_options);

// Lower-level entry used by the two above and by tests: compiles the nodes `outputs` of `g` with
// `inputs` as arguments, in signature order.
struct StepProgram {
  std::vector<std::pair<int, ArgSpec>> inputs;   // node id, spec
  std::vector<std::pair<int, ArgSpec>> outputs;  // node id, spec
  int64_t resident_batch = 0;                    // see Signature::resident_batch
  int64_t gradient_elements = 0;                 // see Signature::gradient_elements
  // Nodes whose floating-point arithmetic is compiled strictly (no fused multiply-adds, no
  // reassociation): the optimizer's part of a training step, so that one pipeline and a
  // two-phase update, whose surroundings differ, round it alike.
  std::vector<int> strict;
  // A segment of a split program: the layout plan made for the whole program before the split
  // (each segment lowers its nodes as the whole program would), and the intermediates passed
  // between segments in the batch-inner layout (node ids, inputs or outputs of this part). Their
  // buffers hold the batch innermost, [N, C, H, W] as a row-major [C, H, W, N], so neither the
  // writer nor the reader transposes them. Unset: the program is planned as it is.
  std::optional<LayoutPlan> layouts;
  std::set<int> batch_inner_args;
};
absl::StatusOr<std::unique_ptr<Executable>> CompileProgram(Graph& g, StepProgram program,
                                                           const CompileOptions& options);

// The programs CompileTrainStep and CompileEvalStep compile (the training program adds gradient
// and update nodes to `g`).
absl::StatusOr<StepProgram> BuildTrainProgram(Graph& g, const ModelDef& model,
                                              const Optimizer& optimizer,
                                              const CompileOptions& options);
// The two phases of a two-phase training step (CompileOptions::two_phase): the gradient phase's
// kGradient outputs and the update phase's kGradient inputs lie at the same offsets of one
// gradient buffer.
struct TwoPhasePrograms {
  StepProgram gradient, update;
};
absl::StatusOr<TwoPhasePrograms> BuildTwoPhasePrograms(Graph& g, const ModelDef& model,
                                                       const Optimizer& optimizer,
                                                       const CompileOptions& options);
absl::StatusOr<StepProgram> BuildEvalProgram(Graph& g, const ModelDef& model,
                                             const CompileOptions& options);

// Ahead of time: writes the program as a Halide static library `<prefix>.a` with header
// `<prefix>.h`, entry points `<function>_argv` and `<function>_metadata`, without Halide's
// runtime (link one from Halide::compile_standalone_runtime). Returns its signature.
// With `segments`, a program over options.max_pipeline_stages is written as several pipelines
// in the one library, entry points `<function>_s<k>_argv` and `_metadata` for k in
// [0, segments->parts.size()) (runtime/segmented_step.h runs them); *segments is left empty when
// the program is one pipeline. Without it, the program is always one pipeline.
absl::StatusOr<Signature> EmitProgram(Graph& g, StepProgram program, const CompileOptions& options,
                                      const std::string& prefix, const std::string& function,
                                      SegmentPlan* segments = nullptr);

}  // namespace kiln
