// The runtime's view of a compiled step: a signature of named, typed arguments and one Run() call.
// JIT executables (compiler/jit.h) and, later, AOT static libraries implement it; the runtime never
// sees Halide.
//
//   const kiln::Signature& sig = exe.signature();
//   KILN_RETURN_IF_ERROR(exe.Run(input_refs, output_refs));  // one call per training step
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "base/tensor.h"
#include "base/types.h"
#include "runtime/device_tensors.h"

namespace kiln {

// The name of the rank-0 step-number input (ArgKind::kStep) in the step graph.
inline constexpr char kStepHyper[] = "step";

enum class ArgRole {
  kData,      // fed per batch (images, labels)
  kHyper,     // rank-0 runtime hyperparameter (learning rate)
  kParam,     // trainable parameter (input: current value)
  kState,     // optimizer state (input: current value)
  kLoss,      // output: the scalar training loss
  kMetric,    // output: a scalar metric (e.g. correct predictions in the batch)
  kNewParam,  // output: the updated parameter
  kNewState,  // output: the updated optimizer state
  kOutput,    // output: a per-example evaluation result (prediction, per-example loss)
  // Resident training (CompileOptions::resident_examples): a whole data set input (images,
  // labels) the step gathers its batch from, rows order[batch_start + i]; and "order" itself,
  // the epoch's permutation of the examples.
  kDataset,
  // A two-phase step (CompileOptions::two_phase): one parameter's gradient, an output of the
  // gradient phase and an input of the update phase, a view of the step's gradient buffer at
  // ArgSpec::offset.
  kGradient,
};
// Node names in resident steps (for dumps; the runtime reads ArgKind): the permutation input,
// the rank-0 int32 hyperparameter with the batch's first position in it, and the per-epoch sums
// of the loss and metrics (states "sum/loss", "sum/<metric>").
inline constexpr char kOrderInput[] = "order";
inline constexpr char kBatchStartHyper[] = "batch_start";
inline constexpr char kSumPrefix[] = "sum/";
const char* ArgRoleName(ArgRole r);

// What an argument means to the runtime, beyond its role. The compiler sets it; the runtime binds
// arguments by role and kind only, never by name or position.
enum class ArgKind {
  kNone,
  kLearningRate,   // kHyper: the optimizer's learning rate (schedules feed it every step)
  kStep,           // kHyper: the 1-based number of the step being taken
  kBatchStart,     // kHyper (resident): the batch's first position in the epoch's order
  kExample,        // kData, kDataset: the examples (ModelDef::example)
  kTarget,         // kData, kDataset: class labels or regression targets (ModelDef::target)
  kOrder,          // kDataset: the epoch's permutation of the examples
  kCorrectCount,   // kMetric: examples of the batch classified correctly (training accuracy)
  kPrediction,     // kOutput: the predicted class of each example
  kExampleLoss,    // kOutput: the loss of each example
  kRunningSum,     // kState, kNewState (resident): the epoch's sum of output `sums`
  kGradScale,      // kHyper (update phase): every gradient is multiplied by it first (1 alone,
                   // 1/N when N processes sum their gradients)
  kExampleOffset,  // kHyper (gradient phase with dropout): the position of the step's first
                   // example in the global batch (rank x batch), so dropout masks hash global
                   // positions
};
// The name of the kGradScale hyperparameter (TrainConfig::hyper may set it).
inline constexpr char kGradScaleHyper[] = "grad_scale";
// The name of the kExampleOffset hyperparameter.
inline constexpr char kExampleOffsetHyper[] = "example_offset";
// Each gradient of a two-phase step starts on a 64-byte boundary of the gradient buffer.
inline constexpr int64_t kGradientAlignBytes = 64;
const char* ArgKindName(ArgKind k);

struct ArgSpec {
  std::string name;  // parameters: the parameter's name; states: "<param>/<slot>"
  ArgRole role;
  ScalarType type;
  Shape shape;
  Initializer init;  // parameters only
  ArgKind kind = ArgKind::kNone;
  // kState (an optimizer's slot) and kGradient: the index in Signature::inputs of its parameter.
  // -1 otherwise.
  int param = -1;
  // kNewParam, kNewState: the index in Signature::inputs of the value this output replaces at the
  // next step. -1 otherwise.
  int updates = -1;
  // kRunningSum states: the index in Signature::outputs of the loss or metric summed. -1 otherwise.
  int sums = -1;
  // kGradient: the offset of this gradient in the gradient buffer, in elements (a multiple of
  // kGradientAlignBytes / the element size). -1 otherwise.
  int64_t offset = -1;
};

// Rank-0 hyperparameters (learning rate, step number) are passed to the compiled step by value,
// not as buffers: nothing to copy to a GPU, nothing to mark dirty when they change every step.
// The caller still hands them over as rank-0 tensors.
inline bool PassedByValue(const ArgSpec& a) { return a.role == ArgRole::kHyper && a.shape.empty(); }

struct Signature {
  std::vector<ArgSpec> inputs;
  std::vector<ArgSpec> outputs;
  // A resident training step (kDataset inputs): the rows it gathers per call; 0 otherwise.
  int64_t resident_batch = 0;
  // A phase of a two-phase step: the elements of its gradient buffer (every kGradient argument
  // lies inside it); 0 otherwise.
  int64_t gradient_elements = 0;
  // Index of the argument with this role and name, or -1.
  int FindInput(ArgRole role, const std::string& name) const;
  int FindOutput(ArgRole role, const std::string& name) const;
  // Index of the first argument of this kind, or -1.
  int FindInput(ArgKind kind) const;
  int FindOutput(ArgKind kind) const;
  // InvalidArgument naming the first argument whose kind or links do not fit its role (an index out
  // of range, a state's parameter that is not a kParam input, an output replacing an input of
  // another shape). The compiler's signatures pass; the check guards manifests read from files.
  absl::Status Validate() const;
};

class Executable {
 public:
  virtual ~Executable() = default;
  virtual const Signature& signature() const = 0;
  // Runs one step. `inputs` and `outputs` follow the signature's order, types and shapes (checked).
  // No input may overlap an output (FailedPrecondition): the step would read what it overwrites.
  virtual absl::Status Run(const std::vector<TensorRef>& inputs,
                           const std::vector<TensorRef>& outputs) = 0;
  // Seconds spent compiling this step (0 when loaded precompiled).
  virtual double compile_seconds() const = 0;
  // True when the step runs on a GPU: arguments that are not resident are copied to the device
  // and back on every call. Set by whoever compiled or loaded the step.
  bool on_device() const { return on_device_; }
  void set_on_device(bool d) { on_device_ = d; }
  // Tensors resident on the device for later Run calls (nullptr: none); not owned. Arguments
  // whose memory is registered there are passed as their device copies (see DeviceTensors).
  virtual void set_device_tensors(DeviceTensors* d) { device_tensors_ = d; }
  DeviceTensors* device_tensors() const { return device_tensors_; }

 protected:
  DeviceTensors* device_tensors_ = nullptr;
  bool on_device_ = false;
};

// Validates refs against specs: count, type, shape, non-null, and no input/output overlap.
absl::Status CheckArguments(const Signature& sig, const std::vector<TensorRef>& inputs,
                            const std::vector<TensorRef>& outputs);

}  // namespace kiln
