#include "compiler/optimizer.h"

#include <cmath>
#include <limits>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "dsl/api.h"

namespace kiln {

bool DecayAllButBiases(const std::string& param) { return !absl::EndsWith(param, ".bias"); }

namespace {

// `value` must be finite and in [lo, hi) (hi_open) or [lo, hi]; `lo_open` excludes lo.
absl::Status CheckSetting(const std::string& optimizer, const char* what, double value, double lo,
                          bool lo_open, double hi, bool hi_open) {
  const bool ok = std::isfinite(value) && (lo_open ? value > lo : value >= lo) &&
                  (hi_open ? value < hi : value <= hi);
  if (ok) return absl::OkStatus();
  const std::string range =
      absl::StrCat(lo_open ? "(" : "[", lo, ", ", std::isinf(hi) ? "inf" : absl::StrCat(hi),
                   hi_open ? ")" : "]");
  return absl::InvalidArgumentError(
      absl::StrCat(optimizer, ": ", what, " must be finite and in ", range, ", got ", value));
}
constexpr double kInf = std::numeric_limits<double>::infinity();

}  // namespace

absl::Status Optimizer::Validate() const {
  int learning_rates = 0;
  for (const HyperParam& h : Hyperparameters()) {
    if (h.kind != ArgKind::kLearningRate) continue;
    ++learning_rates;
    KILN_RETURN_IF_ERROR(CheckSetting(name(), "the learning rate", h.value, 0, true, kInf, true));
  }
  if (learning_rates != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        name(), ": Hyperparameters() must name exactly one learning rate, got ", learning_rates));
  }
  KILN_RETURN_IF_ERROR(
      CheckSetting(name(), "the weight decay", weight_decay_, 0, false, kInf, true));
  KILN_RETURN_IF_ERROR(CheckSetting(name(), "the gradient clipping norm (0: off)",
                                    clip_global_norm_, 0, false, kInf, true));
  return CheckSettings();
}

absl::Status Momentum::CheckSettings() const {
  return CheckSetting(name(), "the momentum", mu_, 0, false, 1, true);
}
absl::Status Adagrad::CheckSettings() const {
  return CheckSetting(name(), "eps", eps_, 0, true, kInf, true);
}
absl::Status RmsProp::CheckSettings() const {
  KILN_RETURN_IF_ERROR(CheckSetting(name(), "alpha", alpha_, 0, false, 1, true));
  return CheckSetting(name(), "eps", eps_, 0, true, kInf, true);
}
absl::Status Adam::CheckSettings() const {
  KILN_RETURN_IF_ERROR(CheckSetting(name(), "beta1", b1_, 0, false, 1, true));
  KILN_RETURN_IF_ERROR(CheckSetting(name(), "beta2", b2_, 0, false, 1, true));
  return CheckSetting(name(), "eps", eps_, 0, true, kInf, true);
}

std::vector<HyperParam> Sgd::Hyperparameters() const {
  return {{"lr", lr_, ArgKind::kLearningRate}};
}

Optimizer::Update Sgd::Apply(Value p, Value g, const std::vector<Value>&,
                             const std::vector<Value>& h) const {
  return {p - h[0] * g, {}};
}

std::vector<HyperParam> Momentum::Hyperparameters() const {
  return {{"lr", lr_, ArgKind::kLearningRate}};
}

Optimizer::Update Momentum::Apply(Value p, Value g, const std::vector<Value>& s,
                                  const std::vector<Value>& h) const {
  Value v = s[0] * mu_ + g;
  Value step = nesterov_ ? g + v * mu_ : v;
  return {p - h[0] * step, {v}};
}

std::vector<HyperParam> Adagrad::Hyperparameters() const {
  return {{"lr", lr_, ArgKind::kLearningRate}};
}

Optimizer::Update Adagrad::Apply(Value p, Value g, const std::vector<Value>& s,
                                 const std::vector<Value>& h) const {
  Value sum = s[0] + Square(g);
  return {p - h[0] * g / (Sqrt(sum) + eps_), {sum}};
}

std::vector<HyperParam> RmsProp::Hyperparameters() const {
  return {{"lr", lr_, ArgKind::kLearningRate}};
}

Optimizer::Update RmsProp::Apply(Value p, Value g, const std::vector<Value>& s,
                                 const std::vector<Value>& h) const {
  Value mean = s[0] * alpha_ + Square(g) * (1 - alpha_);
  return {p - h[0] * g / (Sqrt(mean) + eps_), {mean}};
}

std::vector<HyperParam> Adam::Hyperparameters() const {
  return {{"lr", lr_, ArgKind::kLearningRate}, {kStepHyper, 1, ArgKind::kStep}};
}

Optimizer::Update Adam::Apply(Value p, Value g, const std::vector<Value>& s,
                              const std::vector<Value>& h) const {
  Value m = s[0] * b1_ + g * (1 - b1_);
  Value v = s[1] * b2_ + Square(g) * (1 - b2_);
  // Bias corrections 1 - b^t = 1 - exp(t log b), with t the runtime step input.
  Value c1 = 1.0 - Exp(h[1] * std::log(b1_));
  Value c2 = 1.0 - Exp(h[1] * std::log(b2_));
  Value update = (m / c1) / (Sqrt(v / c2) + eps_);
  return {p - h[0] * update, {m, v}};
}

}  // namespace kiln

namespace kiln {

absl::StatusOr<std::unique_ptr<Optimizer>> MakeOptimizer(const std::string& name, double lr) {
  std::unique_ptr<Optimizer> o;
  if (name == "sgd") o = std::make_unique<Sgd>(lr);
  if (name == "momentum") o = std::make_unique<Momentum>(lr);
  if (name == "nesterov") o = std::make_unique<Momentum>(lr, 0.9, true);
  if (name == "adagrad") o = std::make_unique<Adagrad>(lr);
  if (name == "rmsprop") o = std::make_unique<RmsProp>(lr);
  if (name == "adam") o = std::make_unique<Adam>(lr);
  if (name == "adamw") o = std::make_unique<AdamW>(lr);
  if (o == nullptr) {
    return absl::InvalidArgumentError(
        "unknown optimizer \"" + name +
        "\": expected sgd, momentum, nesterov, adagrad, rmsprop, adam or adamw");
  }
  KILN_RETURN_IF_ERROR(o->Validate());
  return o;
}

}  // namespace kiln
