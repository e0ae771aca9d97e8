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

absl::StatusOr<LrSchedule> ParseLrSchedule(const std::string& text, double lr,
                                           int64_t total_steps) {
  std::vector<std::string> parts = absl::StrSplit(text, ',');
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("--lr_schedule=\"", text, "\": ", why,
                                                   " (expected constant, step:EVERY:GAMMA, "
                                                   "exp:GAMMA or cosine[:MIN_LR], then optional "
                                                   ",warmup:STEPS)"));
  };
  std::vector<std::string> f = absl::StrSplit(parts[0], ':');
  LrSchedule s;
  double a = 0, b = 0;
  int every = 0;
  if (f[0] == "constant" && f.size() == 1) {
    s = LrSchedule::Constant(lr);
  } else if (f[0] == "step" && f.size() == 3 && absl::SimpleAtoi(f[1], &every) && every > 0 &&
             absl::SimpleAtod(f[2], &b)) {
    s = LrSchedule::Step(lr, every, b);
  } else if (f[0] == "exp" && f.size() == 2 && absl::SimpleAtod(f[1], &b)) {
    s = LrSchedule::Exponential(lr, b);
  } else if (f[0] == "cosine" && (f.size() == 1 || (f.size() == 2 && absl::SimpleAtod(f[1], &a)))) {
    s = LrSchedule::Cosine(lr, total_steps, a);
  } else {
    return bad("unknown schedule");
  }
  for (size_t i = 1; i < parts.size(); ++i) {
    std::vector<std::string> w = absl::StrSplit(parts[i], ':');
    int64_t steps = 0;
    if (w.size() != 2 || w[0] != "warmup" || !absl::SimpleAtoi(w[1], &steps) || steps < 0) {
      return bad("bad suffix \"" + parts[i] + "\"");
    }
    s.warmup_steps = steps;
  }
  return s;
}

}  // namespace kiln
