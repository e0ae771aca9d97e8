#include "runtime/idx.h"

#include "gtest/gtest.h"
#include "tests/runtime/test_files.h"

namespace kiln {
namespace {

using testing::WriteTemp;

std::string Be32(uint32_t v) {
  return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
}

std::string Images(uint32_t n, uint32_t rows, uint32_t cols, size_t payload) {
  return std::string("\0\0\x08\x03", 4) + Be32(n) + Be32(rows) + Be32(cols) +
         std::string(payload, '\x7f');
}

std::string Labels(const std::string& labels) {
  return std::string("\0\0\x08\x01", 4) + Be32(static_cast<uint32_t>(labels.size())) + labels;
}

void ExpectError(const absl::Status& s, absl::StatusCode code, const std::string& fragment) {
  EXPECT_EQ(s.code(), code) << s;
  EXPECT_NE(s.message().find(fragment), std::string::npos) << s;
}

TEST(IdxTest, ReadsImagesAndLabels) {
  std::string im = WriteTemp("ok-images", Images(3, 2, 2, 12));
  std::string lb = WriteTemp("ok-labels", Labels(std::string("\x01\x09\x00", 3)));
  auto d = LoadIdxPair(im, lb);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->count, 3);
  EXPECT_EQ(d->example_shape, (Shape{2, 2}));
  EXPECT_EQ(d->labels, (std::vector<int32_t>{1, 9, 0}));
  EXPECT_EQ(d->pixels.size(), 12u);
  EXPECT_EQ(d->pixels[5], 0x7f);
}

TEST(IdxTest, MissingFileIsNotFoundNamingIt) {
  auto r = ReadIdx("/nonexistent/kiln-images", 3);
  ExpectError(r.status(), absl::StatusCode::kNotFound, "/nonexistent/kiln-images");
}

TEST(IdxTest, WrongMagicIsDataLoss) {
  std::string p = WriteTemp("bad-magic",
                            std::string("\x1f\x8b\x08\x03", 4) + Be32(1) + Be32(1) + Be32(1) + "x");
  ExpectError(ReadIdx(p, 3).status(), absl::StatusCode::kDataLoss, "wrong magic");
  ExpectError(ReadIdx(p, 3).status(), absl::StatusCode::kDataLoss, "bad-magic");
}

TEST(IdxTest, WrongRankIsDataLoss) {
  std::string p = WriteTemp("rank", Labels("abc"));
  ExpectError(ReadIdx(p, 3).status(), absl::StatusCode::kDataLoss, "expected rank 3, got rank 1");
}

TEST(IdxTest, TruncatedDataIsDataLoss) {
  std::string p = WriteTemp("truncated", Images(3, 2, 2, 11));
  ExpectError(ReadIdx(p, 3).status(), absl::StatusCode::kDataLoss, "truncated");
  std::string h = WriteTemp("truncated-header", std::string("\0\0\x08\x03", 4) + Be32(3));
  ExpectError(ReadIdx(h, 3).status(), absl::StatusCode::kDataLoss, "truncated header");
  std::string e = WriteTemp("empty", "");
  ExpectError(ReadIdx(e, 3).status(), absl::StatusCode::kDataLoss, "truncated");
}

TEST(IdxTest, TrailingBytesAreDataLoss) {
  std::string p = WriteTemp("trailing", Images(3, 2, 2, 13));
  ExpectError(ReadIdx(p, 3).status(), absl::StatusCode::kDataLoss, "trailing bytes");
}

TEST(IdxTest, HugeOrZeroDimensionsAreRejectedBeforeAllocating) {
  std::string huge = WriteTemp("huge", Images(0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 4));
  ExpectError(ReadIdx(huge, 3).status(), absl::StatusCode::kDataLoss, "header promises more data");
  std::string zero = WriteTemp("zero", Images(0, 28, 28, 0));
  ExpectError(ReadIdx(zero, 3).status(), absl::StatusCode::kDataLoss, "expected a positive size");
}

TEST(IdxTest, CountMismatchNamesBothFiles) {
  std::string im = WriteTemp("cm-images", Images(3, 1, 1, 3));
  std::string lb = WriteTemp("cm-labels", Labels("\x01\x02"));
  auto d = LoadIdxPair(im, lb);
  ExpectError(d.status(), absl::StatusCode::kDataLoss, "count mismatch");
  EXPECT_NE(d.status().message().find("3 images but"), std::string::npos);
  EXPECT_NE(d.status().message().find("2 labels"), std::string::npos);
}

TEST(IdxTest, LabelOutOfRangeIsDataLoss) {
  std::string im = WriteTemp("lr-images", Images(2, 1, 1, 2));
  std::string lb = WriteTemp("lr-labels", Labels("\x01\x0a"));
  ExpectError(LoadIdxPair(im, lb).status(), absl::StatusCode::kDataLoss,
              "label 10 at index 1 out of range: expected [0, 10)");
}

TEST(IdxTest, RealMnistHasTheKnownCountsAndLabelHistogram) {
  const char* dir = KILN_TEST_SOURCE_DIR "/data/mnist";
  auto test = LoadMnist(dir, MnistSplit::kTest);
  ASSERT_TRUE(test.ok()) << test.status() << " (run scripts/setup.sh)";
  EXPECT_EQ(test->count, 10000);
  EXPECT_EQ(test->example_shape, (Shape{28, 28}));
  std::vector<int> hist(10, 0);
  for (int32_t l : test->labels) ++hist[l];
  EXPECT_EQ(hist, (std::vector<int>{980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009}));
  auto train = LoadMnist(dir, MnistSplit::kTrain);
  ASSERT_TRUE(train.ok()) << train.status();
  EXPECT_EQ(train->count, 60000);
}

}  // namespace
}  // namespace kiln
