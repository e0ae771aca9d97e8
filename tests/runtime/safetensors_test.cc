#include "runtime/safetensors.h"

#include <dirent.h>

#include <cstdlib>
#include <cstring>

#include "gtest/gtest.h"
#include "tests/runtime/test_files.h"

namespace kiln {
namespace {

using testing::ReadAll;
using testing::WriteTemp;

Tensor Ramp(ScalarType t, Shape s) {
  Tensor x(t, std::move(s));
  for (int64_t i = 0; i < x.size(); ++i) {
    if (t == ScalarType::kF32) x.data<float>()[i] = static_cast<float>(i);
    if (t == ScalarType::kI32) x.data<int32_t>()[i] = static_cast<int32_t>(i);
    if (t == ScalarType::kF64) x.data<double>()[i] = static_cast<double>(i);
  }
  return x;
}

// A file with the given JSON header and `data_bytes` zero bytes of data.
std::string Raw(const std::string& json, size_t data_bytes) {
  std::string out(8, '\0');
  uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(n >> (8 * i));
  return out + json + std::string(data_bytes, '\0');
}

void ExpectDataLoss(const std::string& bytes, const std::string& fragment) {
  auto f = ParseSafetensors(bytes, "test.safetensors");
  ASSERT_FALSE(f.ok()) << "accepted: " << fragment;
  EXPECT_EQ(f.status().code(), absl::StatusCode::kDataLoss) << f.status();
  EXPECT_NE(f.status().message().find("test.safetensors: "), std::string::npos) << f.status();
  EXPECT_NE(f.status().message().find(fragment), std::string::npos) << f.status();
}

TEST(SafetensorsTest, RoundTripsTensorsAndMetadata) {
  Tensor a = Ramp(ScalarType::kF32, {3, 4}), b = Ramp(ScalarType::kI32, {5}),
         c = Ramp(ScalarType::kF64, {});
  std::string path = ::testing::TempDir() + "/roundtrip.safetensors";
  ASSERT_TRUE(SaveSafetensors(path, {{"a", &a}, {"b", &b}, {"c", &c}}, {{"epoch", "3"}}).ok());
  auto f = LoadSafetensors(path);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ(f->tensors.size(), 3u);
  EXPECT_EQ(f->metadata.at("epoch"), "3");
  const Tensor* ra = f->Find("a");
  ASSERT_NE(ra, nullptr);
  EXPECT_EQ(ra->shape(), (Shape{3, 4}));
  EXPECT_EQ(std::memcmp(ra->raw(), a.raw(), a.bytes()), 0);
  EXPECT_EQ(f->Find("b")->data<int32_t>()[4], 4);
  EXPECT_EQ(f->Find("c")->shape(), Shape{});
  // The header length is a multiple of 8 so the data is aligned.
  std::string bytes = ReadAll(path);
  EXPECT_EQ(static_cast<unsigned char>(bytes[0]) % 8, 0);
}

TEST(SafetensorsTest, SaveIsAtomicAndLeavesNoTemporaryFile) {
  std::string dir = ::testing::TempDir() + "/atomic";
  ASSERT_EQ(std::system(("mkdir -p " + dir).c_str()), 0);
  Tensor a = Ramp(ScalarType::kF32, {8});
  std::string path = dir + "/ckpt.safetensors";
  ASSERT_TRUE(SaveSafetensors(path, {{"a", &a}}).ok());
  a.data<float>()[0] = 42;
  ASSERT_TRUE(SaveSafetensors(path, {{"a", &a}}).ok());
  EXPECT_EQ(LoadSafetensors(path)->Find("a")->data<float>()[0], 42);
  DIR* d = opendir(dir.c_str());
  int files = 0;
  while (dirent* e = readdir(d)) files += e->d_name[0] != '.';
  closedir(d);
  EXPECT_EQ(files, 1);
  // A save into a missing directory fails cleanly and the old file stays.
  EXPECT_FALSE(SaveSafetensors(dir + "/missing/x.safetensors", {{"a", &a}}).ok());
}

TEST(SafetensorsTest, RejectsDuplicateNamesOnSave) {
  Tensor a = Ramp(ScalarType::kF32, {2});
  EXPECT_FALSE(
      SaveSafetensors(::testing::TempDir() + "/dup.safetensors", {{"a", &a}, {"a", &a}}).ok());
}

TEST(SafetensorsTest, RejectsTruncatedFiles) {
  ExpectDataLoss("", "shorter than the 8-byte header length");
  ExpectDataLoss(Raw(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8).substr(0, 20),
                 "truncated: header length");
  ExpectDataLoss(Raw(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4),
                 "out of bounds");
}

TEST(SafetensorsTest, SaysWhenAFileIsNotSafetensorsAtAll) {
  ExpectDataLoss(std::string("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16),
                 "not a safetensors file (it is a PNG image)");
  ExpectDataLoss("epoch,train_loss,train_accuracy\n1,0.3,0.9\n",
                 "not a safetensors file: expected");
  ExpectDataLoss(std::string("\0\0\x08\x03\0\0\xea\x60rest", 12), "(it is an IDX data file)");
}

TEST(SafetensorsTest, SavingIntoAMissingDirectoryNamesTheTarget) {
  Tensor a = Ramp(ScalarType::kF32, {2});
  const std::string path = ::testing::TempDir() + "/no_such_dir/model.safetensors";
  absl::Status s = SaveSafetensors(path, {{"a", &a}});
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message().find(path + ": cannot save: No such file or directory (the directory '"),
            0u)
      << s;
  EXPECT_EQ(s.message().find(".tmp."), std::string::npos) << s;
}

TEST(SafetensorsTest, RejectsHugeHeaderBeforeReadingIt) {
  std::string bytes(8, '\0');
  uint64_t n = 200ull * 1000 * 1000;
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(n >> (8 * i));
  ExpectDataLoss(bytes + "{}", "exceeds the 100 MB limit");
}

TEST(SafetensorsTest, RejectsBadJson) {
  ExpectDataLoss(Raw("{not json", 0), "not valid JSON");
  ExpectDataLoss(Raw("[1,2]", 0), "not a JSON object");
}

TEST(SafetensorsTest, RejectsDuplicateKeys) {
  ExpectDataLoss(Raw(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                     R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                     8),
                 "duplicate key \"a\"");
}

TEST(SafetensorsTest, RejectsUnsupportedDtype) {
  ExpectDataLoss(Raw(R"({"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}})", 4),
                 "unsupported dtype \"BF16\"");
}

TEST(SafetensorsTest, RejectsOffsetsThatDisagreeWithTheShape) {
  ExpectDataLoss(Raw(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8),
                 "expected 12");
}

TEST(SafetensorsTest, RejectsGapsAndOverlaps) {
  ExpectDataLoss(Raw(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                     R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                     12),
                 "starts at 8, expected 4");
  ExpectDataLoss(Raw(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                     R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                     8),
                 "contiguous");
  ExpectDataLoss(Raw(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 8),
                 "data section is 8 bytes, tensors cover 4");
}

TEST(SafetensorsTest, RejectsMalformedEntries) {
  ExpectDataLoss(Raw(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4),
                 "non-negative integers");
  ExpectDataLoss(Raw(R"({"a":{"dtype":"F32","shape":[1]}})", 4), "expected an object");
  ExpectDataLoss(Raw(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", 4),
                 "out of bounds");
  ExpectDataLoss(Raw(R"({"__metadata__":{"k":1}})", 0), "is not a string");
  ExpectDataLoss(
      Raw(R"({"a":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,1]}})", 1),
      "larger than the file's data");
}

TEST(SafetensorsTest, MissingFileIsNotFound) {
  EXPECT_EQ(LoadSafetensors("/nonexistent/x.safetensors").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(SafetensorsTest, NumPyReadsAKilnFile) {
  Tensor w = Ramp(ScalarType::kF32, {784, 10}), b = Ramp(ScalarType::kF32, {10});
  std::string path = ::testing::TempDir() + "/numpy.safetensors";
  ASSERT_TRUE(SaveSafetensors(path, {{"fc.weight", &w}, {"fc.bias", &b}}, {{"who", "kiln"}}).ok());
  const char* src = KILN_TEST_SOURCE_DIR;
  std::string cmd = std::string("/usr/bin/python3 ") + src + "/tests/runtime/read_safetensors.py " +
                    path + " fc.weight 784,10 fc.bias 10 --expect-ramp fc.weight";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::string bad = std::string("/usr/bin/python3 ") + src + "/tests/runtime/read_safetensors.py " +
                    path + " fc.weight 10,784 > /dev/null";
  EXPECT_NE(std::system(bad.c_str()), 0) << "the reader must notice a wrong shape";
}

}  // namespace
}  // namespace kiln

namespace kiln {
namespace {

// Hostile sizes: every one is refused from the header, before any tensor is allocated.
TEST(SafetensorsHostileTest, ShapesWhoseProductOverflowsAndOffsetsPastTheEnd) {
  auto parse = [](const std::string& bytes) { return ParseSafetensors(bytes, "hostile"); };
  auto raw = [](const std::string& json, size_t data) {
    std::string s(8, '\0');
    for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((json.size() >> (8 * i)) & 0xff);
    return s + json + std::string(data, '\0');
  };
  auto overflow = parse(
      raw(R"({"a":{"dtype":"F64","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}})", 8));
  EXPECT_NE(overflow.status().message().find("larger than the file's data"), std::string::npos)
      << overflow.status();
  auto past = parse(raw(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4000000000]}})", 4));
  EXPECT_EQ(past.status().code(), absl::StatusCode::kDataLoss) << past.status();
  auto negative = parse(raw(R"({"a":{"dtype":"U8","shape":[-4],"data_offsets":[0,4]}})", 4));
  EXPECT_EQ(negative.status().code(), absl::StatusCode::kDataLoss);
  std::string huge_len(8, '\xff');  // a header length of 2^64 - 1
  EXPECT_NE(parse(huge_len + "{}").status().message().find("exceeds the 100 MB limit"),
            std::string::npos);
  auto dtype = parse(raw(R"({"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}})", 4));
  EXPECT_NE(dtype.status().message().find("unsupported dtype"), std::string::npos);
}

}  // namespace
}  // namespace kiln
