// Writes one MNIST image as a PNG (how examples/data/digit_7.png, test image 0, was made):
//   mnist_export_digit --data_dir=data/mnist --index=0 --out=examples/data/digit_7.png
#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "runtime/idx.h"
#include "runtime/image.h"

ABSL_FLAG(std::string, data_dir, "data/mnist", "directory with the MNIST IDX files");
ABSL_FLAG(int64_t, index, 0, "index of the test image");
ABSL_FLAG(std::string, out, "digit.png", "PNG file to write");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  absl::StatusOr<kiln::Dataset> test =
      kiln::LoadMnist(absl::GetFlag(FLAGS_data_dir), kiln::MnistSplit::kTest);
  if (!test.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(test.status().message()).c_str());
    return 1;
  }
  int64_t i = absl::GetFlag(FLAGS_index);
  if (i < 0 || i >= test->count) {
    std::fprintf(stderr, "error: --index %lld outside [0, %lld)\n", static_cast<long long>(i),
                 static_cast<long long>(test->count));
    return 1;
  }
  kiln::GrayImage img;
  img.width = static_cast<int>(test->example_shape[1]);
  img.height = static_cast<int>(test->example_shape[0]);
  const uint8_t* p = test->pixels.data() + i * test->example_size();
  img.pixels.assign(p, p + test->example_size());
  absl::Status s = kiln::WriteGrayPng(absl::GetFlag(FLAGS_out), img);
  if (!s.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  std::printf("wrote test image %lld (label %d) to %s\n", static_cast<long long>(i),
              test->labels[i], absl::GetFlag(FLAGS_out).c_str());
  return 0;
}
