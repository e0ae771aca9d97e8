#include "runtime/idx.h"

#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace kiln {
namespace {

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

}  // namespace

absl::StatusOr<Shape> ParseIdxHeader(absl::string_view header, int64_t file_size, int expected_rank,
                                     const std::string& what) {
  const auto* b = reinterpret_cast<const unsigned char*>(header.data());
  if (file_size < 4 || header.size() < 4) {
    return absl::DataLossError(absl::StrCat(what, ": truncated IDX file (no 4-byte magic)"));
  }
  if (b[0] != 0 || b[1] != 0 || b[2] != 0x08) {
    return absl::DataLossError(
        absl::StrCat(what, ": wrong magic: expected 00 00 08 xx (unsigned byte IDX), got ",
                     absl::Hex(b[0], absl::kZeroPad2), " ", absl::Hex(b[1], absl::kZeroPad2), " ",
                     absl::Hex(b[2], absl::kZeroPad2), " ", absl::Hex(b[3], absl::kZeroPad2)));
  }
  if (b[3] != expected_rank) {
    return absl::DataLossError(absl::StrCat(what, ": expected rank ", expected_rank, ", got rank ",
                                            static_cast<int>(b[3])));
  }
  const int64_t header_size = 4 + 4 * int64_t{expected_rank};
  if (static_cast<int64_t>(header.size()) < header_size || file_size < header_size) {
    return absl::DataLossError(absl::StrCat(what, ": truncated header"));
  }
  Shape shape;
  int64_t count = 1;
  for (int d = 0; d < expected_rank; ++d) {
    const unsigned char* p = b + 4 + 4 * d;
    int64_t dim = (int64_t{p[0]} << 24) | (int64_t{p[1]} << 16) | (int64_t{p[2]} << 8) | p[3];
    if (dim <= 0) {
      return absl::DataLossError(
          absl::StrCat(what, ": dimension ", d, " is ", dim, ", expected a positive size"));
    }
    // Each dim is < 2^32 and the running product stays <= file_size (< 2^63) before the next
    // multiplication, so it cannot overflow.
    count *= dim;
    if (count > file_size) {
      return absl::DataLossError(absl::StrCat(what, ": header promises more data than the ",
                                              file_size, "-byte file holds"));
    }
    shape.push_back(dim);
  }
  if (file_size - header_size != count) {
    return absl::DataLossError(
        absl::StrCat(what, file_size - header_size < count ? ": truncated" : ": trailing bytes",
                     ": header dims ", ShapeString(shape), " need ", count,
                     " data bytes, file has ", file_size - header_size));
  }
  return shape;
}

absl::StatusOr<IdxArray> ParseIdx(absl::string_view bytes, int expected_rank,
                                  const std::string& what) {
  IdxArray out;
  KILN_ASSIGN_OR_RETURN(
      out.shape, ParseIdxHeader(bytes, static_cast<int64_t>(bytes.size()), expected_rank, what));
  const size_t header = 4 + 4 * static_cast<size_t>(expected_rank);
  out.data.assign(bytes.begin() + header, bytes.end());
  return out;
}

absl::StatusOr<IdxArray> ReadIdx(const std::string& path, int expected_rank) {
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  if (!f) return absl::NotFoundError(absl::StrCat(path, ": cannot open IDX file"));
  std::fseek(f.get(), 0, SEEK_END);
  long file_size = std::ftell(f.get());
  std::fseek(f.get(), 0, SEEK_SET);
  if (expected_rank < 1 || expected_rank > 8) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": rank ", expected_rank, " unsupported"));
  }
  char header[4 + 4 * 8];
  const size_t got = std::fread(header, 1, 4 + 4 * static_cast<size_t>(expected_rank), f.get());
  IdxArray out;
  KILN_ASSIGN_OR_RETURN(
      out.shape, ParseIdxHeader(absl::string_view(header, got), file_size, expected_rank, path));
  out.data.resize(static_cast<size_t>(NumElements(out.shape)));
  if (std::fread(out.data.data(), 1, out.data.size(), f.get()) != out.data.size()) {
    return absl::DataLossError(absl::StrCat(path, ": read error"));
  }
  return out;
}

absl::Status Dataset::Validate() const {
  auto bad = [](const std::string& m) { return absl::InvalidArgumentError("Dataset: " + m); };
  if (count < 0) return bad(absl::StrCat("count ", count, " is negative"));
  if (pixels.empty() == values.empty() && count > 0) {
    return bad("exactly one of pixels (uint8) and values (float) holds the examples");
  }
  const size_t examples = static_cast<size_t>(count * example_size());
  if (pixels.size() + values.size() != examples) {
    return bad(absl::StrCat("expected ", count, " x ", ShapeString(example_shape), " = ", examples,
                            " example values, got ", pixels.size() + values.size()));
  }
  if (labels.empty() == targets.empty() && count > 0) {
    return bad("exactly one of labels (int32 classes) and targets (float) holds the targets");
  }
  if (!labels.empty() && labels.size() != static_cast<size_t>(count)) {
    return bad(absl::StrCat("expected ", count, " labels, got ", labels.size()));
  }
  if (!targets.empty() && targets.size() != static_cast<size_t>(count * target_size())) {
    return bad(absl::StrCat("expected ", count, " x ", ShapeString(target_shape),
                            " target values, got ", targets.size()));
  }
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0)
      return bad(absl::StrCat("label ", labels[i], " at index ", i, " is negative"));
  }
  return absl::OkStatus();
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
