#include "runtime/dataset.h"

#include <set>

#include "gtest/gtest.h"

namespace kiln {
namespace {

Dataset Counting(int64_t n) {
  Dataset d;
  d.count = n;
  d.example_shape = {2};
  for (int64_t i = 0; i < n; ++i) {
    d.pixels.push_back(static_cast<uint8_t>(i));
    d.pixels.push_back(255);
    d.labels.push_back(static_cast<int32_t>(i % 10));
  }
  return d;
}

std::vector<int64_t> Order(const BatchFeeder& f) {
  std::vector<int64_t> o;
  for (int64_t b = 0; b < f.num_batches(); ++b) {
    for (int64_t r = 0; r < f.batch_size(); ++r) o.push_back(f.IndexOf(b, r));
  }
  return o;
}

TEST(BatchFeederTest, ShuffleDependsOnlyOnSeedAndEpoch) {
  Dataset d = Counting(50);
  BatchFeeder a(d, 5, 7), b(d, 5, 7), c(d, 5, 8);
  a.StartEpoch(0);
  b.StartEpoch(0);
  c.StartEpoch(0);
  EXPECT_EQ(Order(a), Order(b));
  EXPECT_NE(Order(a), Order(c));
  std::vector<int64_t> e0 = Order(a);
  a.StartEpoch(1);
  EXPECT_NE(Order(a), e0);
  std::set<int64_t> all(e0.begin(), e0.end());
  EXPECT_EQ(all.size(), 50u);  // a permutation
}

TEST(BatchFeederTest, TrainingDropsThePartialBatchEvaluationPadsIt) {
  Dataset d = Counting(23);
  BatchFeeder train(d, 5, 1, true, /*drop_last=*/true);
  EXPECT_EQ(train.num_batches(), 4);
  BatchFeeder eval(d, 5, 1, false, /*drop_last=*/false);
  EXPECT_EQ(eval.num_batches(), 5);
  std::vector<float> images(10);
  std::vector<int32_t> labels(5);
  EXPECT_EQ(eval.Fill(4, images.data(), labels.data()), 3);
  EXPECT_EQ(labels[2], 22 % 10);
  EXPECT_EQ(images[4 * 2 + 0], 0.0f);  // padding rows are zero
  EXPECT_EQ(eval.IndexOf(4, 3), -1);
}

TEST(BatchFeederTest, NormalizesPixelsTo01) {
  Dataset d = Counting(4);
  BatchFeeder f(d, 4, 1, /*shuffle=*/false);
  f.StartEpoch(0);
  std::vector<float> images(8);
  std::vector<int32_t> labels(4);
  EXPECT_EQ(f.Fill(0, images.data(), labels.data()), 4);
  EXPECT_FLOAT_EQ(images[0], 0.0f);
  EXPECT_FLOAT_EQ(images[1], 1.0f);
  EXPECT_FLOAT_EQ(images[6], 3.0f / 255.0f);
  EXPECT_EQ(labels[3], 3);
}

// Prefetch is a cache hint: for any batch, in range or not, with float examples, no labels,
// padding rows and a data-parallel slice, Fill's results stay those of a feeder never asked.
TEST(BatchFeederTest, PrefetchChangesNoBatch) {
  Dataset d;
  d.count = 23;
  d.example_shape = {3};
  for (int64_t i = 0; i < 3 * d.count; ++i) d.values.push_back(static_cast<float>(i));
  d.targets.assign(static_cast<size_t>(d.count), 0.5f);
  d.target_shape = {1};
  BatchFeeder asked(d, 4, 3, true, /*drop_last=*/false), plain(d, 4, 3, true, false);
  asked.set_slice(1, 2);
  plain.set_slice(1, 2);
  asked.StartEpoch(2);
  plain.StartEpoch(2);
  for (int64_t b = -1; b <= asked.num_batches() + 1; ++b) asked.Prefetch(b);
  for (int64_t b = 0; b < asked.num_batches(); ++b) {
    std::vector<float> x(12, -1), y(12, -2);
    EXPECT_EQ(asked.Fill(b, x.data(), nullptr), plain.Fill(b, y.data(), nullptr)) << b;
    EXPECT_EQ(x, y) << b;
  }
}

TEST(RngTest, IsDeterministicAndRoughlyUniform) {
  Rng a(5), b(5);
  double sum = 0;
  for (int i = 0; i < 10000; ++i) {
    double u = a.Uniform();
    EXPECT_EQ(u, b.Uniform());
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
  }
  EXPECT_NEAR(sum / 10000, 0.5, 0.02);
}

}  // namespace
}  // namespace kiln
