#include "runtime/evaluator.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "runtime/batch_source.h"
#include "runtime/step_args.h"

namespace kiln {
namespace {

// The evaluation step's output tensors and its arguments bound to them, to `batches` and to the
// store's current parameters.
struct EvalBinding {
  std::vector<Tensor> outputs;
  StepArgs args;
};

absl::StatusOr<EvalBinding> Bind(const Signature& sig, ParameterStore& store,
                                 BatchSource& batches) {
  EvalBinding b;
  for (const ArgSpec& a : sig.outputs) b.outputs.emplace_back(a.type, a.shape);
  KILN_ASSIGN_OR_RETURN(b.args, BindStepArgs(sig, store, store.parity(),
                                             [&](const ArgSpec& a) -> absl::StatusOr<TensorRef> {
                                               if (a.role != ArgRole::kOutput)
                                                 return batches.Feed(a);
                                               return b.outputs[&a - sig.outputs.data()].ref();
                                             }));
  return b;
}

absl::StatusOr<int> PredictionOutput(const Signature& sig) {
  const int p = sig.FindOutput(ArgKind::kPrediction);
  if (p < 0 || sig.outputs[p].type != ScalarType::kI32) {
    return absl::InvalidArgumentError(
        "the evaluation step has no int32 prediction output (an eval output named "
        "\"prediction\")");
  }
  return p;
}

}  // namespace

absl::StatusOr<EvalResult> EvaluateStep(Executable& eval, ParameterStore& store,
                                        const Dataset& data) {
  const Signature& sig = eval.signature();
  const int loss = sig.FindOutput(ArgKind::kExampleLoss);
  EvalResult r;
  r.classification = !data.regression();
  int pred = -1;
  if (r.classification) {
    KILN_ASSIGN_OR_RETURN(pred, PredictionOutput(sig));
  } else if (loss < 0) {
    return absl::InvalidArgumentError(
        "evaluating regression targets needs a per-example loss output (an eval output named "
        "\"loss\")");
  }
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<HostBatches> batches,
                        HostBatches::ForEvaluation(sig, data));
  KILN_ASSIGN_OR_RETURN(EvalBinding b, Bind(sig, store, *batches));
  int classes = 1;
  for (int32_t l : data.labels) classes = std::max(classes, l + 1);
  if (r.classification) {
    r.confusion.assign(static_cast<size_t>(classes),
                       std::vector<int64_t>(static_cast<size_t>(classes), 0));
  }
  // Full batches are read in place: the example (and target) inputs point into the data set's
  // own arrays when they hold what the step reads (uint8 pixels or float values, int32 labels or
  // float targets); only a padded last batch, or examples the step reads in another type, are
  // copied.
  const int e = sig.FindInput(ArgKind::kExample), t = sig.FindInput(ArgKind::kTarget);
  const int64_t rows = sig.inputs[e].shape[0], size = data.example_size();
  const bool example_in_place =
      sig.inputs[e].type == (data.float_examples() ? ScalarType::kF32 : ScalarType::kU8);
  const bool target_in_place =
      t < 0 || sig.inputs[t].type == (r.classification ? ScalarType::kI32 : ScalarType::kF32);
  const TensorRef example_buf = e >= 0 ? b.args.in[e] : TensorRef(),
                  target_buf = t >= 0 ? b.args.in[t] : TensorRef();
  double loss_sum = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t batch = 0; batch < batches->num_batches(); ++batch) {
    const int64_t first = batch * rows;
    const bool in_place = example_in_place && target_in_place && first + rows <= data.count;
    int64_t real = rows;
    if (in_place) {
      b.args.in[e].data = data.float_examples()
                              ? static_cast<void*>(const_cast<float*>(&data.values[first * size]))
                              : const_cast<uint8_t*>(&data.pixels[first * size]);
      if (t >= 0) {
        b.args.in[t].data = r.classification
                                ? static_cast<void*>(const_cast<int32_t*>(&data.labels[first]))
                                : const_cast<float*>(&data.targets[first * data.target_size()]);
      }
    } else {
      b.args.in[e] = example_buf;
      if (t >= 0) b.args.in[t] = target_buf;
      real = batches->Prepare(batch);
    }
    KILN_RETURN_IF_ERROR(eval.Run(b.args.in, b.args.out));
    r.count += real;
    if (loss >= 0) {
      for (int64_t row = 0; row < real; ++row) loss_sum += b.outputs[loss].At(row);
    }
    if (!r.classification) continue;
    const int32_t* predicted = b.outputs[pred].data<int32_t>();
    const int32_t* truth = &data.labels[first];
    for (int64_t row = 0; row < real; ++row) {
      const int32_t p = predicted[row];
      r.correct += p == truth[row];
      if (p >= 0 && p < classes) ++r.confusion[truth[row]][p];
    }
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (loss >= 0 && r.count > 0) r.mean_loss = loss_sum / static_cast<double>(r.count);
  return r;
}

absl::StatusOr<int32_t> PredictOne(Executable& eval, ParameterStore& store,
                                   const std::vector<float>& example) {
  const Signature& sig = eval.signature();
  KILN_ASSIGN_OR_RETURN(const int pred, PredictionOutput(sig));
  const int e = sig.FindInput(ArgKind::kExample);
  if (e < 0) return absl::InvalidArgumentError("the evaluation step has no example input");
  const ArgSpec& in = sig.inputs[e];
  const int64_t per_example = in.shape.empty() ? 0 : NumElements(in.shape) / in.shape[0];
  if (static_cast<int64_t>(example.size()) != per_example) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Predict: expected ", per_example, " values per example (the evaluation step's input '",
        in.name, "' is ", ShapeString(in.shape), "), got ", example.size()));
  }
  Dataset one;
  one.count = 1;
  one.example_shape = {per_example};
  one.pixels.resize(example.size());
  one.labels = {0};
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<HostBatches> batches, HostBatches::ForEvaluation(sig, one));
  KILN_ASSIGN_OR_RETURN(EvalBinding b, Bind(sig, store, *batches));
  Tensor& x = batches->example();     // row 0 is the example, the rest of the batch zeros
  if (x.type() == ScalarType::kU8) {  // back to the pixels the step normalizes itself
    uint8_t* px = x.data<uint8_t>();
    for (size_t i = 0; i < example.size(); ++i) {
      px[i] = static_cast<uint8_t>(std::lround(std::clamp(example[i], 0.0f, 1.0f) * 255.0f));
    }
  } else {
    std::copy(example.begin(), example.end(), x.data<float>());
  }
  KILN_RETURN_IF_ERROR(eval.Run(b.args.in, b.args.out));
  return b.outputs[pred].data<int32_t>()[0];
}

}  // namespace kiln
