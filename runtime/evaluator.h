// Evaluation and prediction through a compiled evaluation step, over the model's current
// parameters and state (ParameterStore).
//
//   KILN_ASSIGN_OR_RETURN(kiln::EvalResult r, kiln::EvaluateStep(*eval, store, test));
//   KILN_ASSIGN_OR_RETURN(int32_t digit, kiln::PredictOne(*eval, store, pixels));
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/dataset.h"
#include "runtime/executable.h"
#include "runtime/parameter_store.h"

namespace kiln {

struct EvalResult {
  // False for a regression model (float targets, no prediction output): then mean_loss is the
  // result, and there is no accuracy and no confusion matrix.
  bool classification = true;
  int64_t count = 0;
  int64_t correct = 0;
  double accuracy() const { return count ? static_cast<double>(correct) / count : 0; }
  double mean_loss = -1;  // if the evaluation step has a per-example loss output
  std::vector<std::vector<int64_t>> confusion;  // [true label][prediction]
  double seconds = 0;
};

// Every example of `data` (the last partial batch included) through the step's prediction
// output (ArgKind::kPrediction, int32 [batch]) and, if it has one, its per-example loss. For a
// regression data set (float targets) the per-example loss is required and is the result.
absl::StatusOr<EvalResult> EvaluateStep(Executable& eval, ParameterStore& store,
                                        const Dataset& data);

// The predicted class of one normalized example (the step's example size in floats in [0, 1]);
// InvalidArgument "expected N values per example, got M" for another size.
absl::StatusOr<int32_t> PredictOne(Executable& eval, ParameterStore& store,
                                   const std::vector<float>& example);

}  // namespace kiln
