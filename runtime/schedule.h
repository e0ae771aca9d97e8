// Learning-rate schedules, evaluated on the host each step and fed to the compiled step's "lr"
// input (so changing the rate never recompiles).
//
//   kiln::LrSchedule s = kiln::LrSchedule::Cosine(1e-3, /*total_steps=*/4690).WithWarmup(200);
//   double lr = s.At(step, epoch);
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace kiln {

struct LrSchedule {
  enum class Kind { kConstant, kStep, kExponential, kCosine };
  Kind kind = Kind::kConstant;
  double base = 0.01;
  double gamma = 0.1;        // kStep: factor every `every_epochs`; kExponential: factor per epoch
  int every_epochs = 1;      // kStep
  int64_t total_steps = 1;   // kCosine: decays to `min_lr` at this step
  double min_lr = 0;         // kCosine
  int64_t warmup_steps = 0;  // linear warm-up from 0 over the first steps (any kind)

  static LrSchedule Constant(double lr) { return {Kind::kConstant, lr}; }
  static LrSchedule Step(double lr, int every_epochs, double gamma) {
    LrSchedule s{Kind::kStep, lr, gamma};
    s.every_epochs = every_epochs;
    return s;
  }
  static LrSchedule Exponential(double lr, double gamma) { return {Kind::kExponential, lr, gamma}; }
  static LrSchedule Cosine(double lr, int64_t total_steps, double min_lr = 0) {
    LrSchedule s{Kind::kCosine, lr};
    s.total_steps = total_steps;
    s.min_lr = min_lr;
    return s;
  }
  LrSchedule WithWarmup(int64_t steps) const {
    LrSchedule s = *this;
    s.warmup_steps = steps;
    return s;
  }
  // The rate for 0-based `step` in 0-based `epoch`.
  double At(int64_t step, int epoch) const;
  // InvalidArgument naming the setting and its allowed range: a base rate that is not finite and
  // positive, a factor (gamma) that is not finite and positive, a step interval below 1 epoch, a
  // cosine floor outside [0, base], a warm-up longer than `run_steps` (the steps the run takes in
  // all; 0: unknown, not checked). A schedule decaying to 0 is fine.
  absl::Status Validate(int64_t run_steps = 0) const;
  std::string ToString() const;
};

// Parses "constant", "step:EVERY:GAMMA", "exp:GAMMA", "cosine[:MIN_LR]" with an optional
// ",warmup:STEPS" suffix; `total_steps` feeds the cosine schedule and bounds the warm-up. The
// result is validated (see LrSchedule::Validate); errors name the flag and the allowed range.
absl::StatusOr<LrSchedule> ParseLrSchedule(const std::string& text, double lr, int64_t total_steps);

}  // namespace kiln
