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

// Labelled uint8 examples: pixels [count, example_shape...] row-major, labels [count].
struct Dataset {
  int64_t count = 0;
  Shape example_shape;  // e.g. {28, 28}
  std::vector<uint8_t> pixels;
  std::vector<int32_t> labels;
  int64_t example_size() const { return NumElements(example_shape); }
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
