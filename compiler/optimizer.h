// Optimizers as graph nodes: an update rule written in DSL ops, compiled into the training step.
// Adding an optimizer means writing its state slots, hyperparameters and Apply().
//
//   kiln::Adam adam(/*lr=*/1e-3);
//   adam.WithWeightDecay(5e-4).WithClipGlobalNorm(1.0);
//   // The step takes rank-0 inputs "lr" (and "step" for Adam), fed at run time: learning-rate
//   // schedules never recompile.
//
// Shared by all optimizers and applied by the compiler around Apply():
//   - clipping by global norm: every gradient is scaled by min(1, clip / ||all gradients||);
//   - L2 weight decay (the tutorial's regularization): g += wd * p, for the parameters the decay
//     filter accepts (all by default; e.g. skip biases with DecayAllButBiases);
//   - decoupled decay (AdamW): p -= lr * wd * p, next to the update.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "dsl/graph.h"
#include "runtime/executable.h"

namespace kiln {

// A runtime hyperparameter of the training step (a rank-0 input fed every step), its default,
// and what it means to the runtime (kLearningRate: schedules feed it; kStep: the step number).
struct HyperParam {
  std::string name;
  double value;
  ArgKind kind = ArgKind::kNone;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual std::string name() const = 0;
  // Per-parameter state slots (each the parameter's shape, zero-initialized), e.g. {"velocity"}.
  virtual std::vector<std::string> StateSlots() const { return {}; }
  // Runtime hyperparameters (rank-0 step inputs) with defaults; exactly one is the learning rate.
  virtual std::vector<HyperParam> Hyperparameters() const = 0;

  struct Update {
    Value param;
    std::vector<Value> state;  // in StateSlots() order
  };
  // The update rule for one parameter. `hyper` follows Hyperparameters() order.
  virtual Update Apply(Value param, Value grad, const std::vector<Value>& state,
                       const std::vector<Value>& hyper) const = 0;

  Optimizer& WithWeightDecay(double wd) {
    weight_decay_ = wd;
    return *this;
  }
  Optimizer& WithDecayFilter(std::function<bool(const std::string&)> decays) {
    decays_ = std::move(decays);
    return *this;
  }
  Optimizer& WithClipGlobalNorm(double max_norm) {
    clip_global_norm_ = max_norm;
    return *this;
  }
  double weight_decay() const { return weight_decay_; }
  bool decoupled_decay() const { return decoupled_; }
  bool Decays(const std::string& param) const { return !decays_ || decays_(param); }
  double clip_global_norm() const { return clip_global_norm_; }

  // InvalidArgument naming the setting and its allowed range when one is out of it: a learning
  // rate that is not finite and positive, a negative or non-finite weight decay or clipping norm,
  // a momentum or beta outside [0, 1), an epsilon that is not positive. Compiling a training step
  // checks this first.
  absl::Status Validate() const;

 protected:
  // The optimizer's own constants (momentum, betas, epsilon); the learning rate and the shared
  // settings are checked by Validate().
  virtual absl::Status CheckSettings() const { return absl::OkStatus(); }
  bool decoupled_ = false;

 private:
  double weight_decay_ = 0;
  std::function<bool(const std::string&)> decays_;
  double clip_global_norm_ = 0;
};

// A decay filter that exempts biases (parameters named "*.bias").
bool DecayAllButBiases(const std::string& param);

// p <- p - lr g
class Sgd : public Optimizer {
 public:
  explicit Sgd(double lr) : lr_(lr) {}
  std::string name() const override { return "sgd"; }
  std::vector<HyperParam> Hyperparameters() const override;
  Update Apply(Value param, Value grad, const std::vector<Value>& state,
               const std::vector<Value>& hyper) const override;

 private:
  double lr_;
};

// v <- mu v + g;  p <- p - lr v  (Nesterov: p <- p - lr (g + mu v)), as torch.optim.SGD.
class Momentum : public Optimizer {
 public:
  explicit Momentum(double lr, double momentum = 0.9, bool nesterov = false)
      : lr_(lr), mu_(momentum), nesterov_(nesterov) {}
  std::string name() const override { return nesterov_ ? "nesterov" : "momentum"; }
  std::vector<std::string> StateSlots() const override { return {"velocity"}; }
  std::vector<HyperParam> Hyperparameters() const override;
  Update Apply(Value param, Value grad, const std::vector<Value>& state,
               const std::vector<Value>& hyper) const override;

 protected:
  absl::Status CheckSettings() const override;

 private:
  double lr_, mu_;
  bool nesterov_;
};

// s <- s + g^2;  p <- p - lr g / (sqrt(s) + eps)
class Adagrad : public Optimizer {
 public:
  explicit Adagrad(double lr, double eps = 1e-10) : lr_(lr), eps_(eps) {}
  std::string name() const override { return "adagrad"; }
  std::vector<std::string> StateSlots() const override { return {"sum_sq"}; }
  std::vector<HyperParam> Hyperparameters() const override;
  Update Apply(Value param, Value grad, const std::vector<Value>& state,
               const std::vector<Value>& hyper) const override;

 protected:
  absl::Status CheckSettings() const override;

 private:
  double lr_, eps_;
};

// s <- a s + (1 - a) g^2;  p <- p - lr g / (sqrt(s) + eps)
class RmsProp : public Optimizer {
 public:
  explicit RmsProp(double lr, double alpha = 0.99, double eps = 1e-8)
      : lr_(lr), alpha_(alpha), eps_(eps) {}
  std::string name() const override { return "rmsprop"; }
  std::vector<std::string> StateSlots() const override { return {"mean_sq"}; }
  std::vector<HyperParam> Hyperparameters() const override;
  Update Apply(Value param, Value grad, const std::vector<Value>& state,
               const std::vector<Value>& hyper) const override;

 protected:
  absl::Status CheckSettings() const override;

 private:
  double lr_, alpha_, eps_;
};

// m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
// p <- p - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps), t the 1-based step.
class Adam : public Optimizer {
 public:
  explicit Adam(double lr, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8)
      : lr_(lr), b1_(beta1), b2_(beta2), eps_(eps) {}
  std::string name() const override { return decoupled_ ? "adamw" : "adam"; }
  std::vector<std::string> StateSlots() const override { return {"m", "v"}; }
  std::vector<HyperParam> Hyperparameters() const override;
  Update Apply(Value param, Value grad, const std::vector<Value>& state,
               const std::vector<Value>& hyper) const override;

 protected:
  absl::Status CheckSettings() const override;

 private:
  double lr_, b1_, b2_, eps_;
};

// Adam with decoupled weight decay (default 0.01), as torch.optim.AdamW.
class AdamW : public Adam {
 public:
  explicit AdamW(double lr, double weight_decay = 0.01, double beta1 = 0.9, double beta2 = 0.999,
                 double eps = 1e-8)
      : Adam(lr, beta1, beta2, eps) {
    decoupled_ = true;
    WithWeightDecay(weight_decay);
  }
};

}  // namespace kiln

namespace kiln {
// By name: "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw" with their default
// settings; InvalidArgument for any other name.
absl::StatusOr<std::unique_ptr<Optimizer>> MakeOptimizer(const std::string& name, double lr);
}  // namespace kiln
