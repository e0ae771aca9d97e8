// The data-parallel part of a Trainer::Train call over several ranks (runtime/trainer.h,
// set_communicator): the gradient sum between a two-phase step's phases, on the host or on the
// device, and the settings every rank trains with. Runtime only, like the trainer.
//
//   KILN_ASSIGN_OR_RETURN(std::unique_ptr<kiln::GradientSum> sum,
//                         kiln::GradientSum::Install(step, comm, device_comm, device, &seconds));
//   ... train: every step's gradients are summed across the ranks ...
//   sum.reset();  // the step is as it was
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "runtime/communicator.h"
#include "runtime/device_tensors.h"
#include "runtime/executable.h"

namespace kiln {

struct TrainConfig;
class TwoPhaseStep;

class GradientSum {
 public:
  // Hooks `step` to sum its gradient buffer over `comm` between its phases: on the host, or, when
  // the step's tensors live on `device`, in place on their device copies over `device_comm`
  // (NCCL; in emulation the host communicator over the stand-in copies). FailedPrecondition when
  // `step` is not two-phase or a GPU step has no device communicator. `seconds` accumulates the
  // time spent in the sums (waiting for the other ranks included).
  static absl::StatusOr<std::unique_ptr<GradientSum>> Install(Executable* step, Communicator* comm,
                                                              Communicator* device_comm,
                                                              DeviceTensors* device,
                                                              double* seconds);
  ~GradientSum();  // removes the hooks
  GradientSum(const GradientSum&) = delete;
  GradientSum& operator=(const GradientSum&) = delete;

 private:
  explicit GradientSum(TwoPhaseStep* step) : step_(step) {}
  TwoPhaseStep* step_;
};

// The settings rank `rank` of `ranks` trains with: the gradient scale (TrainConfig::hyper's
// "grad_scale", default 1) divided by the ranks, so the summed gradient is the global batch's
// mean; the progress bar on rank 0 only.
TrainConfig DataParallelConfig(const TrainConfig& config, int rank, int ranks);

}  // namespace kiln
