// A test suite over real MNIST (data/mnist, fetched by scripts/setup.sh), loaded once per suite;
// a load error fails every test of the suite (not a skip).
//   class MyTest : public kiln::testing::MnistSuite {};
//   TEST_F(MyTest, X) { Train(*train_); ... }
#pragma once

#include <string>

#include "gtest/gtest.h"
#include "runtime/idx.h"

namespace kiln::testing {

class MnistSuite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (train_ != nullptr || load_status_ != nullptr) return;
    const std::string dir = KILN_TEST_SOURCE_DIR "/data/mnist";
    auto train = LoadMnist(dir, MnistSplit::kTrain);
    auto test = LoadMnist(dir, MnistSplit::kTest);
    if (!train.ok() || !test.ok()) {
      load_status_ = new absl::Status(train.ok() ? test.status() : train.status());
      return;
    }
    train_ = new Dataset(std::move(*train));
    test_ = new Dataset(std::move(*test));
  }
  void SetUp() override {
    ASSERT_EQ(load_status_, nullptr) << *load_status_ << " (run scripts/setup.sh)";
  }
  static inline Dataset* train_ = nullptr;
  static inline Dataset* test_ = nullptr;
  static inline absl::Status* load_status_ = nullptr;
};

}  // namespace kiln::testing
