// Seeded parameter initialization (the runtime side of kiln::Initializer).
//
//   kiln::Tensor w(kiln::ScalarType::kF32, {784, 10});
//   KILN_RETURN_IF_ERROR(kiln::InitializeTensor("fc.weight", init, /*seed=*/1, w));
//
// Each parameter's stream depends only on (seed, parameter name), so adding a layer does not
// change the others' initial values. Fan-in/fan-out: [in, out] for matrices, [out, in, k...] for
// convolution kernels.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "base/tensor.h"

namespace kiln {

absl::Status InitializeTensor(const std::string& name, const Initializer& init, uint64_t seed,
                              Tensor& t);

}  // namespace kiln
