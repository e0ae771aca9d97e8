// Element types and shapes shared by the DSL, the compiler and the runtime.
//
//   kiln::Shape s = {16, 784};            // logical, outermost first (NumPy order)
//   int64_t n = kiln::NumElements(s);     // 12544
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kiln {

// Element type of a tensor. kFloat is "the float type of the compilation": float32 for training,
// float64 when a test compiles the same graph in double precision.
enum class DType { kFloat, kInt32, kUInt8 };

using Shape = std::vector<int64_t>;

inline int64_t NumElements(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::string ShapeString(const Shape& s);  // "[16, 784]"
const char* DTypeName(DType t);           // "float", "int32", "uint8"

// How a parameter is initialized. Filled by the runtime (seeded), described by the DSL.
struct Initializer {
  enum class Kind {
    kZeros,
    kConstant,
    kUniform,
    kNormal,
    kXavierUniform,
    kXavierNormal,
    kKaimingUniform,
    kKaimingNormal,
    kTruncatedNormal
  };
  Kind kind = Kind::kZeros;
  double a = 0;  // constant value; uniform low; (truncated) normal mean; gain for Xavier/Kaiming
                 // (0 = default)
  double b = 0;  // uniform high; (truncated) normal stddev
  static Initializer Zeros() { return {Kind::kZeros, 0, 0}; }
  static Initializer Constant(double v) { return {Kind::kConstant, v, 0}; }
  static Initializer Uniform(double lo, double hi) { return {Kind::kUniform, lo, hi}; }
  static Initializer Normal(double mean, double stddev) { return {Kind::kNormal, mean, stddev}; }
  static Initializer XavierUniform(double gain = 1) { return {Kind::kXavierUniform, gain, 0}; }
  static Initializer XavierNormal(double gain = 1) { return {Kind::kXavierNormal, gain, 0}; }
  static Initializer KaimingUniform() { return {Kind::kKaimingUniform, 0, 0}; }
  static Initializer KaimingNormal() { return {Kind::kKaimingNormal, 0, 0}; }
  // Normal(mean, stddev) redrawn until within two standard deviations of the mean (the
  // transformer initialization, e.g. stddev 0.02).
  static Initializer TruncatedNormal(double mean, double stddev) {
    return {Kind::kTruncatedNormal, mean, stddev};
  }
};
std::string InitializerString(const Initializer& init);

}  // namespace kiln
