// Reader for the IDX files MNIST ships in (big-endian header, then raw bytes).
//
//   absl::StatusOr<kiln::Dataset> train = kiln::LoadMnist("data/mnist", kiln::MnistSplit::kTrain);
//
// Every problem is an error naming the file: NotFound (missing), DataLoss (wrong magic, rank,
// truncated or oversized file, images/labels count mismatch, label out of range).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/types.h"

namespace kiln {

// Examples with their targets, in memory, row-major: the examples as uint8 `pixels` (images; fed
// normalized to [0, 1], or raw to a step that normalizes them itself) or as float `values` (fed as
// they are), [count, example_shape...]; the targets as int32 class `labels` [count] or float
// regression `targets` [count, target_shape...]. The IDX loader is one source of them.
struct Dataset {
  int64_t count = 0;
  Shape example_shape;          // e.g. {28, 28}
  std::vector<uint8_t> pixels;  // uint8 examples, or
  std::vector<float> values;    // float examples (when `pixels` is empty)
  std::vector<int32_t> labels;  // class labels, or
  Shape target_shape;           // per-example regression target shape ({}: a scalar)
  std::vector<float> targets;   // regression targets (when `labels` is empty)
  int64_t example_size() const { return NumElements(example_shape); }
  int64_t target_size() const { return NumElements(target_shape); }
  bool float_examples() const { return pixels.empty(); }
  bool regression() const { return labels.empty(); }
  // InvalidArgument naming what disagrees: a negative count, examples or targets of another size
  // than count x their shape, both or neither kind of example or target.
  absl::Status Validate() const;
};

struct IdxArray {
  Shape shape;                // dims from the header
  std::vector<uint8_t> data;  // unsigned-byte payload
};

// Reads an unsigned-byte IDX file of the expected rank (3 for images, 1 for labels). The header
// is validated against the file size before the payload is allocated.
absl::StatusOr<IdxArray> ReadIdx(const std::string& path, int expected_rank);
// The same from bytes in memory (`what` names the source in errors).
absl::StatusOr<IdxArray> ParseIdx(absl::string_view bytes, int expected_rank,
                                  const std::string& what);

// Reads images + labels and checks they agree and labels are in [0, num_classes).
absl::StatusOr<Dataset> LoadIdxPair(const std::string& images_path, const std::string& labels_path,
                                    int num_classes = 10);

enum class MnistSplit { kTrain, kTest };
absl::StatusOr<Dataset> LoadMnist(const std::string& dir, MnistSplit split);

struct MnistData {
  Dataset train, test;
};
// Both splits; the first error names its file.
absl::StatusOr<MnistData> LoadMnistTrainAndTest(const std::string& dir);

}  // namespace kiln
