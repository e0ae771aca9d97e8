#include "runtime/idx.h"

#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"

namespace kiln {
namespace {

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

}  // namespace

absl::StatusOr<IdxArray> ReadIdx(const std::string& path, int expected_rank) {
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  if (!f) return absl::NotFoundError(absl::StrCat(path, ": cannot open IDX file"));
  std::fseek(f.get(), 0, SEEK_END);
  long file_size = std::ftell(f.get());
  std::fseek(f.get(), 0, SEEK_SET);
  unsigned char magic[4];
  if (file_size < 4 || std::fread(magic, 1, 4, f.get()) != 4) {
    return absl::DataLossError(absl::StrCat(path, ": truncated IDX file (no 4-byte magic)"));
  }
  if (magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08) {
    return absl::DataLossError(absl::StrCat(
        path, ": wrong magic: expected 00 00 08 xx (unsigned byte IDX), got ",
        absl::Hex(magic[0], absl::kZeroPad2), " ", absl::Hex(magic[1], absl::kZeroPad2), " ",
        absl::Hex(magic[2], absl::kZeroPad2), " ", absl::Hex(magic[3], absl::kZeroPad2)));
  }
  if (magic[3] != expected_rank) {
    return absl::DataLossError(absl::StrCat(path, ": expected rank ", expected_rank, ", got rank ",
                                            static_cast<int>(magic[3])));
  }
  IdxArray out;
  int64_t count = 1;
  for (int d = 0; d < expected_rank; ++d) {
    unsigned char b[4];
    if (std::fread(b, 1, 4, f.get()) != 4) {
      return absl::DataLossError(absl::StrCat(path, ": truncated header"));
    }
    int64_t dim = (int64_t{b[0]} << 24) | (int64_t{b[1]} << 16) | (int64_t{b[2]} << 8) | b[3];
    if (dim <= 0) {
      return absl::DataLossError(
          absl::StrCat(path, ": dimension ", d, " is ", dim, ", expected a positive size"));
    }
    count *= dim;  // at most 3 dims of < 2^32 each: checked against the file size below
    if (count > file_size) {
      return absl::DataLossError(absl::StrCat(path, ": header promises more data than the ",
                                              file_size, "-byte file holds"));
    }
    out.shape.push_back(dim);
  }
  int64_t header = 4 + 4 * int64_t{expected_rank};
  if (file_size - header != count) {
    return absl::DataLossError(absl::StrCat(
        path, file_size - header < count ? ": truncated" : ": trailing bytes", ": header dims ",
        ShapeString(out.shape), " need ", count, " data bytes, file has ", file_size - header));
  }
  out.data.resize(static_cast<size_t>(count));
  if (std::fread(out.data.data(), 1, out.data.size(), f.get()) != out.data.size()) {
    return absl::DataLossError(absl::StrCat(path, ": read error"));
  }
  return out;
}

absl::StatusOr<Dataset> LoadIdxPair(const std::string& images_path, const std::string& labels_path,
                                    int num_classes) {
  absl::StatusOr<IdxArray> images = ReadIdx(images_path, 3);
  if (!images.ok()) return images.status();
  absl::StatusOr<IdxArray> labels = ReadIdx(labels_path, 1);
  if (!labels.ok()) return labels.status();
  if (images->shape[0] != labels->shape[0]) {
    return absl::DataLossError(absl::StrCat("count mismatch: ", images_path, " has ",
                                            images->shape[0], " images but ", labels_path, " has ",
                                            labels->shape[0], " labels"));
  }
  Dataset d;
  d.count = images->shape[0];
  d.example_shape = {images->shape[1], images->shape[2]};
  d.pixels = std::move(images->data);
  d.labels.resize(labels->data.size());
  for (size_t i = 0; i < labels->data.size(); ++i) {
    int label = labels->data[i];
    if (label >= num_classes) {
      return absl::DataLossError(absl::StrCat(labels_path, ": label ", label, " at index ", i,
                                              " out of range: expected [0, ", num_classes, ")"));
    }
    d.labels[i] = label;
  }
  return d;
}

absl::StatusOr<Dataset> LoadMnist(const std::string& dir, MnistSplit split) {
  const char* prefix = split == MnistSplit::kTrain ? "train" : "t10k";
  return LoadIdxPair(absl::StrCat(dir, "/", prefix, "-images-idx3-ubyte"),
                     absl::StrCat(dir, "/", prefix, "-labels-idx1-ubyte"));
}

absl::StatusOr<MnistData> LoadMnistTrainAndTest(const std::string& dir) {
  MnistData d;
  absl::StatusOr<Dataset> train = LoadMnist(dir, MnistSplit::kTrain);
  if (!train.ok()) return train.status();
  absl::StatusOr<Dataset> test = LoadMnist(dir, MnistSplit::kTest);
  if (!test.ok()) return test.status();
  d.train = std::move(*train);
  d.test = std::move(*test);
  return d;
}

}  // namespace kiln
