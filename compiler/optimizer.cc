#include "compiler/optimizer.h"

#include "dsl/api.h"

namespace kiln {

Optimizer::Update Sgd::Apply(Value param, Value grad, const std::vector<Value>&,
                             const std::vector<Value>& hyper) const {
  return {param - hyper[0] * grad, {}};
}

}  // namespace kiln
