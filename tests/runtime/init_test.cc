#include "runtime/init.h"

#include <cmath>
#include <cstring>

#include "gtest/gtest.h"

namespace kiln {
namespace {

TEST(InitTest, XavierUniformStaysWithinItsLimitAndIsSeededByName) {
  Tensor a(ScalarType::kF32, {784, 10}), b(ScalarType::kF32, {784, 10}),
      c(ScalarType::kF32, {784, 10});
  ASSERT_TRUE(InitializeTensor("fc.weight", Initializer::XavierUniform(), 1, a).ok());
  ASSERT_TRUE(InitializeTensor("fc.weight", Initializer::XavierUniform(), 1, b).ok());
  ASSERT_TRUE(InitializeTensor("other", Initializer::XavierUniform(), 1, c).ok());
  EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.bytes()), 0);
  EXPECT_NE(std::memcmp(a.raw(), c.raw(), a.bytes()), 0);
  double limit = std::sqrt(6.0 / (784 + 10)), maxabs = 0;
  for (int64_t i = 0; i < a.size(); ++i)
    maxabs = std::max(maxabs, double(std::fabs(a.data<float>()[i])));
  EXPECT_LE(maxabs, limit);
  EXPECT_GT(maxabs, 0.9 * limit);
}

TEST(InitTest, NormalAndKaimingHaveTheirMoments) {
  Tensor n(ScalarType::kF64, {200, 100});
  ASSERT_TRUE(InitializeTensor("n", Initializer::Normal(1.0, 0.5), 3, n).ok());
  double mean = 0, var = 0;
  for (int64_t i = 0; i < n.size(); ++i) mean += n.data<double>()[i] / n.size();
  for (int64_t i = 0; i < n.size(); ++i) var += std::pow(n.data<double>()[i] - mean, 2) / n.size();
  EXPECT_NEAR(mean, 1.0, 0.02);
  EXPECT_NEAR(std::sqrt(var), 0.5, 0.02);
  Tensor k(ScalarType::kF64, {20, 10, 5, 5});  // conv kernel: fan_in = 10 * 25
  ASSERT_TRUE(InitializeTensor("k", Initializer::KaimingNormal(), 3, k).ok());
  double ss = 0;
  for (int64_t i = 0; i < k.size(); ++i) ss += k.data<double>()[i] * k.data<double>()[i];
  EXPECT_NEAR(std::sqrt(ss / k.size()), std::sqrt(2.0 / 250), 0.01);
}

// Truncated at two standard deviations: every draw within them, and the spread of a normal cut
// there, sqrt(1 - 4 phi(2) / (2 Phi(2) - 1)) = 0.8796 of the untruncated one.
TEST(InitTest, TruncatedNormalStaysWithinTwoDeviations) {
  Tensor t(ScalarType::kF64, {200, 100});
  ASSERT_TRUE(InitializeTensor("t", Initializer::TruncatedNormal(0.5, 0.02), 3, t).ok());
  double mean = 0, var = 0, far = 0;
  for (int64_t i = 0; i < t.size(); ++i) mean += t.data<double>()[i] / t.size();
  for (int64_t i = 0; i < t.size(); ++i) {
    const double d = t.data<double>()[i] - 0.5;
    var += (t.data<double>()[i] - mean) * (t.data<double>()[i] - mean) / t.size();
    far = std::max(far, std::fabs(d));
  }
  EXPECT_NEAR(mean, 0.5, 0.001);
  EXPECT_NEAR(std::sqrt(var), 0.8796 * 0.02, 0.0005);
  EXPECT_LE(far, 2 * 0.02);
  EXPECT_GT(far, 1.9 * 0.02);
  EXPECT_EQ(InitializerString(Initializer::TruncatedNormal(0, 0.02)), "truncated_normal(0, 0.02)");
}

TEST(InitTest, ConstantZerosUniform) {
  Tensor t(ScalarType::kF32, {100});
  ASSERT_TRUE(InitializeTensor("t", Initializer::Constant(0.25), 1, t).ok());
  EXPECT_EQ(t.data<float>()[99], 0.25f);
  ASSERT_TRUE(InitializeTensor("t", Initializer::Uniform(2, 3), 1, t).ok());
  for (int i = 0; i < 100; ++i) {
    EXPECT_GE(t.data<float>()[i], 2.0f);
    EXPECT_LT(t.data<float>()[i], 3.0f);
  }
  Tensor i32(ScalarType::kI32, {3});
  EXPECT_EQ(InitializeTensor("i", Initializer::Zeros(), 1, i32).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kiln
