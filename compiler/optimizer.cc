#include "compiler/optimizer.h"

#include <cmath>

#include "absl/strings/match.h"
#include "dsl/api.h"

namespace kiln {

bool DecayAllButBiases(const std::string& param) { return !absl::EndsWith(param, ".bias"); }

std::vector<std::pair<std::string, double>> Sgd::Hyperparameters() const { return {{"lr", lr_}}; }

Optimizer::Update Sgd::Apply(Value p, Value g, const std::vector<Value>&,
                             const std::vector<Value>& h) const {
  return {p - h[0] * g, {}};
}

std::vector<std::pair<std::string, double>> Momentum::Hyperparameters() const {
  return {{"lr", lr_}};
}

Optimizer::Update Momentum::Apply(Value p, Value g, const std::vector<Value>& s,
                                  const std::vector<Value>& h) const {
  Value v = s[0] * mu_ + g;
  Value step = nesterov_ ? g + v * mu_ : v;
  return {p - h[0] * step, {v}};
}

std::vector<std::pair<std::string, double>> Adagrad::Hyperparameters() const {
  return {{"lr", lr_}};
}

Optimizer::Update Adagrad::Apply(Value p, Value g, const std::vector<Value>& s,
                                 const std::vector<Value>& h) const {
  Value sum = s[0] + Square(g);
  return {p - h[0] * g / (Sqrt(sum) + eps_), {sum}};
}

std::vector<std::pair<std::string, double>> RmsProp::Hyperparameters() const {
  return {{"lr", lr_}};
}

Optimizer::Update RmsProp::Apply(Value p, Value g, const std::vector<Value>& s,
                                 const std::vector<Value>& h) const {
  Value mean = s[0] * alpha_ + Square(g) * (1 - alpha_);
  return {p - h[0] * g / (Sqrt(mean) + eps_), {mean}};
}

std::vector<std::pair<std::string, double>> Adam::Hyperparameters() const {
  return {{"lr", lr_}, {kStepHyper, 1}};
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
  if (name == "sgd") return std::unique_ptr<Optimizer>(new Sgd(lr));
  if (name == "momentum") return std::unique_ptr<Optimizer>(new Momentum(lr));
  if (name == "nesterov") return std::unique_ptr<Optimizer>(new Momentum(lr, 0.9, true));
  if (name == "adagrad") return std::unique_ptr<Optimizer>(new Adagrad(lr));
  if (name == "rmsprop") return std::unique_ptr<Optimizer>(new RmsProp(lr));
  if (name == "adam") return std::unique_ptr<Optimizer>(new Adam(lr));
  if (name == "adamw") return std::unique_ptr<Optimizer>(new AdamW(lr));
  return absl::InvalidArgumentError(
      "unknown optimizer \"" + name +
      "\": expected sgd, momentum, nesterov, adagrad, rmsprop, adam or adamw");
}

}  // namespace kiln
