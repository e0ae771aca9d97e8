#include "runtime/data_parallel.h"

#include <chrono>
#include <vector>

#include "absl/strings/str_cat.h"
#include "runtime/trainer.h"
#include "runtime/two_phase_step.h"

namespace kiln {
namespace {

double Since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

absl::StatusOr<std::unique_ptr<GradientSum>> GradientSum::Install(Executable* step,
                                                                  Communicator* comm,
                                                                  Communicator* device_comm,
                                                                  DeviceTensors* device,
                                                                  double* seconds) {
  auto* two = dynamic_cast<TwoPhaseStep*>(step);
  if (two == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("data-parallel training over ", comm->size(),
                     " ranks needs a two-phase training step (CompileOptions::two_phase; examples: "
                     "--two_phase; AOT binaries: TWO_PHASE / kiln-aot --two_phase)"));
  }
  if (device != nullptr) {
    // The gradients are summed where they are: NCCL on a GPU; in emulation (tests) the host
    // communicator over the stand-in device copies.
    Communicator* dc = device->mode() == DeviceTensors::Mode::kEmulated ? comm : device_comm;
    if (dc == nullptr) {
      return absl::FailedPreconditionError(
          "data-parallel training on a GPU needs a device communicator (NCCL): "
          "Trainer::set_device_communicator");
    }
    two->set_between_phases_on_device(
        [dc, seconds](const std::vector<TwoPhaseStep::DeviceSpan>& spans) {
          const auto t0 = std::chrono::steady_clock::now();
          std::vector<Communicator::Span> s;
          for (const auto& g : spans) s.push_back({g.address, g.count, g.type});
          absl::Status st = dc->AllReduceSumMany(s);
          *seconds += Since(t0);
          return st;
        });
  }
  two->set_between_phases([comm, seconds](Tensor& g) {
    const auto t0 = std::chrono::steady_clock::now();
    absl::Status s = comm->AllReduceSum(g.raw(), g.size(), g.type());
    *seconds += Since(t0);
    return s;
  });
  return std::unique_ptr<GradientSum>(new GradientSum(two));
}

GradientSum::~GradientSum() {
  step_->set_between_phases(nullptr);
  step_->set_between_phases_on_device(nullptr);
}

TrainConfig DataParallelConfig(const TrainConfig& config, int rank, int ranks) {
  TrainConfig c = config;
  auto given = c.hyper.find(kGradScaleHyper);
  const double scale = given != c.hyper.end() ? given->second : 1.0;
  c.hyper[kGradScaleHyper] = scale / ranks;
  c.progress = config.progress && rank == 0;
  return c;
}

}  // namespace kiln
