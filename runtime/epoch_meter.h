// The training step's loss and metrics, step by step and over an epoch. A host-fed step's are
// read after every step. A resident step adds them up itself (kRunningSum state in the
// ParameterStore, zeroed when an epoch starts): they are read once at the epoch's end, and the
// loss of a single step only when it is logged, so nothing crosses from the device per step.
//
//   kiln::EpochMeter meter(sig, store, resident);
//   ... bind the step's loss and metric outputs with meter.Feed ...
//   meter.StartEpoch();
//   std::optional<double> loss = meter.AfterStep(/*want_loss=*/logging);
//   KILN_RETURN_IF_ERROR(meter.EndEpoch());
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/tensor.h"
#include "runtime/communicator.h"
#include "runtime/executable.h"
#include "runtime/parameter_store.h"

namespace kiln {

class EpochMeter {
 public:
  // A resident meter registers its tensors with the store's device until it is destroyed.
  EpochMeter(const Signature& sig, ParameterStore& store, bool resident);
  ~EpochMeter();
  EpochMeter(const EpochMeter&) = delete;
  EpochMeter& operator=(const EpochMeter&) = delete;

  // The tensor for the step's loss or a metric output.
  absl::StatusOr<TensorRef> Feed(const ArgSpec& a);
  // Zeroes the epoch's sums (resident: on the device too).
  void StartEpoch();
  // After a step: its loss, when `want_loss` or for a host-fed step (always read there);
  // host-fed: the step's loss and metrics added to the epoch's sums.
  absl::StatusOr<std::optional<double>> AfterStep(bool want_loss);
  // Resident: the step's sums read back.
  absl::Status EndEpoch();
  // Data-parallel training, after each step and before AfterStep: one allreduce makes the step's
  // loss the mean over the ranks (each rank's loss is the mean over its equal share of the global
  // batch, so this is the global batch's mean loss) and each metric the sum (counts such as
  // "correct"); it also carries `flag`, summed (> 0: some rank raised it). A resident step's
  // values stay on the device: the allreduce carries the flag, and the loss when `want_loss`;
  // EndEpoch then reduces the epoch's sums the same way.
  absl::Status ReduceStep(Communicator& comm, double& flag, bool want_loss);

  double epoch_loss_sum() const { return loss_sum_; }
  // The epoch's correctly classified examples, or -1 when the step counts none.
  double epoch_correct() const { return has_correct_ ? correct_ : -1; }
  // Every metric summed over all epochs of the meter's life.
  const std::map<std::string, double>& metric_totals() const { return totals_; }

 private:
  struct Scalar {
    const ArgSpec* spec;                  // the step's output
    Tensor value;                         // the last step's value
    ParameterStore::Slot* sum = nullptr;  // resident: the step's running sum of it
  };
  void Add(const ArgSpec& spec, double v);
  ParameterStore& store_;
  bool resident_;
  Communicator* comm_ = nullptr;  // data-parallel (set by ReduceStep)
  std::vector<double> reduced_;   // ReduceStep's values
  std::vector<Scalar> scalars_;   // loss first
  double loss_sum_ = 0, correct_ = 0;
  bool has_correct_ = false;
  std::map<std::string, double> totals_;
};

}  // namespace kiln
