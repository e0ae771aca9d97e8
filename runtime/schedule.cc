#include "runtime/schedule.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace kiln {

double LrSchedule::At(int64_t step, int epoch) const {
  double lr = base;
  switch (kind) {
    case Kind::kConstant:
      break;
    case Kind::kStep:
      lr = base * std::pow(gamma, epoch / std::max(1, every_epochs));
      break;
    case Kind::kExponential:
      lr = base * std::pow(gamma, epoch);
      break;
    case Kind::kCosine: {
      double t = std::min(1.0, static_cast<double>(step) / std::max<int64_t>(1, total_steps));
      lr = min_lr + 0.5 * (base - min_lr) * (1 + std::cos(3.141592653589793 * t));
      break;
    }
  }
  if (warmup_steps > 0 && step < warmup_steps) lr *= static_cast<double>(step + 1) / warmup_steps;
  return lr;
}

std::string LrSchedule::ToString() const {
  std::string s;
  switch (kind) {
    case Kind::kConstant:
      s = absl::StrCat("constant ", base);
      break;
    case Kind::kStep:
      s = absl::StrCat("step ", base, " x", gamma, " every ", every_epochs, " epochs");
      break;
    case Kind::kExponential:
      s = absl::StrCat("exponential ", base, " x", gamma, " per epoch");
      break;
    case Kind::kCosine:
      s = absl::StrCat("cosine ", base, " -> ", min_lr, " over ", total_steps, " steps");
      break;
  }
  if (warmup_steps > 0) absl::StrAppend(&s, ", linear warm-up ", warmup_steps, " steps");
  return s;
}

absl::Status LrSchedule::Validate(int64_t run_steps) const {
  auto bad = [](const std::string& what) { return absl::InvalidArgumentError(what); };
  if (!std::isfinite(base) || base <= 0) {
    return bad(absl::StrCat("learning rate: expected a finite number > 0, got ", base));
  }
  if ((kind == Kind::kStep || kind == Kind::kExponential) &&
      (!std::isfinite(gamma) || gamma <= 0)) {
    return bad(absl::StrCat("learning-rate schedule: the factor GAMMA must be finite and > 0, got ",
                            gamma));
  }
  if (kind == Kind::kStep && every_epochs < 1) {
    return bad(absl::StrCat(
        "learning-rate schedule: EVERY_EPOCHS of step:EVERY_EPOCHS:GAMMA must be >= 1, got ",
        every_epochs));
  }
  if (kind == Kind::kCosine && (!std::isfinite(min_lr) || min_lr < 0 || min_lr > base)) {
    return bad(absl::StrCat("learning-rate schedule: the cosine floor MIN_LR must be in [0, ", base,
                            "] (the base rate), got ", min_lr));
  }
  if (warmup_steps < 0 || (run_steps > 0 && warmup_steps > run_steps)) {
    return bad(absl::StrCat("learning-rate schedule: warm-up of ", warmup_steps,
                            " steps must be in [0, ", run_steps > 0 ? run_steps : 0,
                            "], the steps of the whole run"));
  }
  return absl::OkStatus();
}

absl::StatusOr<LrSchedule> ParseLrSchedule(const std::string& text, double lr,
                                           int64_t total_steps) {
  std::vector<std::string> parts = absl::StrSplit(text, ',');
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("--lr_schedule=\"", text, "\": ", why,
                                                   " (expected constant, step:EVERY_EPOCHS:GAMMA, "
                                                   "exp:GAMMA or cosine[:MIN_LR], then optional "
                                                   ",warmup:STEPS)"));
  };
  std::vector<std::string> f = absl::StrSplit(parts[0], ':');
  auto number = [&](size_t i, double* out) { return i < f.size() && absl::SimpleAtod(f[i], out); };
  LrSchedule s;
  double a = 0, b = 0;
  int every = 0;
  if (f[0] == "constant" && f.size() == 1) {
    s = LrSchedule::Constant(lr);
  } else if (f[0] == "step") {
    if (f.size() != 3 || !absl::SimpleAtoi(f[1], &every) || !number(2, &b)) {
      return bad("step takes two numbers, step:EVERY_EPOCHS:GAMMA");
    }
    s = LrSchedule::Step(lr, every, b);
  } else if (f[0] == "exp") {
    if (f.size() != 2 || !number(1, &b)) return bad("exp takes one number, exp:GAMMA");
    s = LrSchedule::Exponential(lr, b);
  } else if (f[0] == "cosine") {
    if (f.size() > 2 || (f.size() == 2 && !number(1, &a))) {
      return bad("cosine takes at most one number, cosine:MIN_LR");
    }
    s = LrSchedule::Cosine(lr, total_steps, a);
  } else {
    return bad(absl::StrCat("unknown schedule \"", f[0], "\""));
  }
  for (size_t i = 1; i < parts.size(); ++i) {
    std::vector<std::string> w = absl::StrSplit(parts[i], ':');
    int64_t steps = 0;
    if (w.size() != 2 || w[0] != "warmup" || !absl::SimpleAtoi(w[1], &steps)) {
      return bad("bad suffix \"" + parts[i] + "\"");
    }
    s.warmup_steps = steps;
  }
  if (absl::Status st = s.Validate(total_steps); !st.ok()) return bad(std::string(st.message()));
  return s;
}

}  // namespace kiln
