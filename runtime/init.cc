#include "runtime/init.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "runtime/dataset.h"

namespace kiln {
namespace {

uint64_t HashName(const std::string& s, uint64_t seed) {
  uint64_t h = 1469598103934665603ull ^ seed;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

void Fans(const Shape& s, double* fan_in, double* fan_out) {
  if (s.empty()) {
    *fan_in = *fan_out = 1;
  } else if (s.size() == 1) {
    *fan_in = *fan_out = static_cast<double>(s[0]);
  } else if (s.size() == 2) {
    *fan_in = static_cast<double>(s[0]);
    *fan_out = static_cast<double>(s[1]);
  } else {  // [out, in, k...]
    double receptive = 1;
    for (size_t i = 2; i < s.size(); ++i) receptive *= static_cast<double>(s[i]);
    *fan_in = static_cast<double>(s[1]) * receptive;
    *fan_out = static_cast<double>(s[0]) * receptive;
  }
}

}  // namespace

absl::Status InitializeTensor(const std::string& name, const Initializer& init, uint64_t seed,
                              Tensor& t) {
  if (t.type() != ScalarType::kF32 && t.type() != ScalarType::kF64) {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter '", name, "': only float tensors can be initialized"));
  }
  Rng rng(HashName(name, seed));
  double fan_in, fan_out;
  Fans(t.shape(), &fan_in, &fan_out);
  using K = Initializer::Kind;
  auto sample = [&]() -> double {
    double gain = init.a == 0 ? 1.0 : init.a;
    switch (init.kind) {
      case K::kZeros:
        return 0;
      case K::kConstant:
        return init.a;
      case K::kUniform:
        return init.a + (init.b - init.a) * rng.Uniform();
      case K::kNormal:
        return init.a + init.b * rng.Normal();
      case K::kXavierUniform: {
        double limit = gain * std::sqrt(6.0 / (fan_in + fan_out));
        return (2 * rng.Uniform() - 1) * limit;
      }
      case K::kXavierNormal:
        return gain * std::sqrt(2.0 / (fan_in + fan_out)) * rng.Normal();
      case K::kKaimingUniform: {
        double limit = std::sqrt(6.0 / fan_in);  // gain sqrt(2) for ReLU: sqrt(2) * sqrt(3/fan_in)
        return (2 * rng.Uniform() - 1) * limit;
      }
      case K::kKaimingNormal:
        return std::sqrt(2.0 / fan_in) * rng.Normal();
      case K::kTruncatedNormal: {
        double z = rng.Normal();
        while (std::fabs(z) > 2) z = rng.Normal();
        return init.a + init.b * z;
      }
    }
    return 0;
  };
  for (int64_t i = 0; i < t.size(); ++i) {
    double v = sample();
    if (t.type() == ScalarType::kF32) {
      t.data<float>()[i] = static_cast<float>(v);
    } else {
      t.data<double>()[i] = v;
    }
  }
  return absl::OkStatus();
}

}  // namespace kiln
