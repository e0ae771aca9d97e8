// Optimizers as graph nodes: an update rule written in DSL ops, compiled into the training step.
// Adding an optimizer means writing its state slots, hyperparameters and Apply().
//
//   kiln::Sgd sgd(/*lr=*/0.001);
//   // the step then takes a rank-0 input "lr" (fed at run time, so schedules need no recompile)
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "dsl/graph.h"

namespace kiln {

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual std::string name() const = 0;
  // Per-parameter state slots (each the parameter's shape, zero-initialized), e.g. {"velocity"}.
  virtual std::vector<std::string> StateSlots() const { return {}; }
  // Runtime hyperparameters (rank-0 step inputs) with their default values, e.g. {{"lr", 0.01}}.
  virtual std::vector<std::pair<std::string, double>> Hyperparameters() const = 0;

  struct Update {
    Value param;
    std::vector<Value> state;  // in StateSlots() order
  };
  // The update rule for one parameter. `hyper` follows Hyperparameters() order.
  virtual Update Apply(Value param, Value grad, const std::vector<Value>& state,
                       const std::vector<Value>& hyper) const = 0;
};

// Plain stochastic gradient descent: p <- p - lr * g.
class Sgd : public Optimizer {
 public:
  explicit Sgd(double lr) : lr_(lr) {}
  std::string name() const override { return "sgd"; }
  std::vector<std::pair<std::string, double>> Hyperparameters() const override {
    return {{"lr", lr_}};
  }
  Update Apply(Value param, Value grad, const std::vector<Value>& state,
               const std::vector<Value>& hyper) const override;

 private:
  double lr_;
};

}  // namespace kiln
