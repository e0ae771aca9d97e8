// The argument lists of a compiled step, bound by role and kind (never by name or position):
// parameters and state to the ParameterStore (read from one half, new values written to the half
// of the input each output `updates`), every other argument to a tensor the caller feeds.
//
//   kiln::StepArgs args;
//   KILN_ASSIGN_OR_RETURN(args, kiln::BindStepArgs(sig, store, store.parity(), feed));
//   KILN_RETURN_IF_ERROR(step->Run(args.in, args.out));
#pragma once

#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "base/tensor.h"
#include "runtime/executable.h"
#include "runtime/parameter_store.h"

namespace kiln {

struct StepArgs {
  std::vector<TensorRef> in, out;
};

// The tensor for an argument that is not a parameter or state: data, hyperparameters, the loss,
// metrics and per-example outputs. An error stops the binding.
using FeedFn = std::function<absl::StatusOr<TensorRef>(const ArgSpec& spec)>;

// Inputs of role kParam and kState read half `parity` of their slot; outputs of role kNewParam and
// kNewState write the other half of the slot of the input they update.
absl::StatusOr<StepArgs> BindStepArgs(const Signature& sig, ParameterStore& store, int parity,
                                      const FeedFn& feed);

}  // namespace kiln
