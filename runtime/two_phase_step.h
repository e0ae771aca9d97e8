// A training step compiled as two pipelines (CompileOptions::two_phase) and run as one Executable:
//   1. the gradient phase: forward, loss, metrics and backward; every parameter's gradient goes
//      into one contiguous buffer owned by the step (each gradient starting on a 64-byte
//      boundary, ArgSpec::offset);
//   2. the update phase: the optimizer (with clipping and weight decay) over that buffer, every
//      gradient first multiplied by the runtime hyperparameter "grad_scale" (ArgKind::kGradScale,
//      default 1).
// Its signature holds the arguments one pipeline would take and give (in another order: the
// runtime binds by role and kind), plus "grad_scale", so the Trainer,
// checkpoints and the AOT driver use it unchanged. Between the phases a hook sees the gradient
// buffer: data-parallel training sums it across processes there and passes grad_scale 1/N.
//
//   kiln::CompileOptions options;
//   options.two_phase = true;
//   auto step = kiln::CompileTrainStep(g, model, kiln::Adam(1e-3), options);
//   auto* two = static_cast<kiln::TwoPhaseStep*>(step->get());
//   two->set_between_phases([](kiln::Tensor& grads) { return AllReduceSum(grads); });
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "base/tensor.h"
#include "runtime/executable.h"

namespace kiln {

class TwoPhaseStep : public Executable {
 public:
  // InvalidArgument when the phases do not fit together: the gradient phase must output every
  // kGradient the update phase reads (same parameter, type, shape and offset, one buffer size),
  // and an argument both read (a parameter, a hyperparameter) must have one type and shape.
  static absl::StatusOr<std::unique_ptr<TwoPhaseStep>> Make(std::unique_ptr<Executable> gradient,
                                                            std::unique_ptr<Executable> update);

  const Signature& signature() const override { return sig_; }
  // Also the phases'; the gradient views are registered in `d` at the next Run.
  void set_device_tensors(DeviceTensors* d) override;
  // Runs the gradient phase, the between-phases hook (if any), then the update phase.
  absl::Status Run(const std::vector<TensorRef>& inputs,
                   const std::vector<TensorRef>& outputs) override;
  double compile_seconds() const override {
    return gradient_->compile_seconds() + update_->compile_seconds();
  }

  Executable& gradient_phase() { return *gradient_; }
  Executable& update_phase() { return *update_; }
  // The gradient buffer (float32 or float64 [gradient_elements]); after a Run's gradient phase it
  // holds d loss / d parameter at each kGradient argument's offset, zeros in the padding. On a
  // device the host copy is current only inside the between-phases hook.
  Tensor& gradients() { return grads_; }
  // On a device: brings the gradient buffer's host copy up to date (e.g. to read the gradients
  // after a step); a no-op on the host.
  absl::Status GradientsToHost();
  // The view of `grads_` for the gradient phase's output `spec` (a kGradient argument).
  TensorRef GradientView(const ArgSpec& spec);

  // Called between the phases with the gradient buffer's host copy current; what it writes there
  // is what the update phase reads. An error stops the step before any parameter changes.
  using BetweenPhases = std::function<absl::Status(Tensor& gradients)>;
  void set_between_phases(BetweenPhases f) { between_ = std::move(f); }
  // On a device (set_device_tensors): called between the phases instead with each gradient's
  // device copy (DeviceTensors::DeviceAddress), so a collective on device memory (NCCL) sums them
  // in place with no copy to the host. Null: the host hook above, if any.
  struct DeviceSpan {
    void* address;
    int64_t count;
    ScalarType type;
  };
  using BetweenPhasesOnDevice = std::function<absl::Status(const std::vector<DeviceSpan>&)>;
  void set_between_phases_on_device(BetweenPhasesOnDevice f) { between_device_ = std::move(f); }

 private:
  TwoPhaseStep(std::unique_ptr<Executable> gradient, std::unique_ptr<Executable> update)
      : gradient_(std::move(gradient)), update_(std::move(update)) {}
  absl::Status Build();

  // Where a phase's argument comes from: an index into the combined step's inputs or outputs, or
  // (kFromGradients) the gradient buffer.
  static constexpr int kFromGradients = -1;
  struct Phase {
    Executable* exe = nullptr;
    std::vector<int> in_from, out_from;
    std::vector<TensorRef> in, out;  // reused every Run
  };
  absl::Status RunPhase(Phase& p, const std::vector<TensorRef>& inputs,
                        const std::vector<TensorRef>& outputs);

  std::unique_ptr<Executable> gradient_, update_;
  Signature sig_;
  Phase phases_[2];
  Tensor grads_;
  std::vector<TensorRef> views_;  // every gradient's view, for device registration
  BetweenPhases between_;
  BetweenPhasesOnDevice between_device_;
};

// The same as an Executable (compiler/model.cc returns it from CompileTrainStep).
absl::StatusOr<std::unique_ptr<Executable>> MakeTwoPhaseStep(std::unique_ptr<Executable> gradient,
                                                             std::unique_ptr<Executable> update);

}  // namespace kiln
