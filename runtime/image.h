// Image files for prediction: PNG or JPEG in, grayscale, resized with antialiasing, normalized
// like the training data (pixel / 255, or 1 - pixel / 255 for dark digits on a light background,
// as the tutorial does for its photographed digit).
//
//   absl::StatusOr<std::vector<float>> x = kiln::LoadDigitImage("digit.png", 28, 28, false);
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kiln {

struct GrayImage {
  int width = 0, height = 0;
  std::vector<uint8_t> pixels;  // row-major
};

// Reads a PNG or JPEG (recognized by its signature, at most 64 MiB) and converts it to 8-bit
// grayscale. Images over 8192 pixels on a side or 2^25 pixels are refused from their header.
absl::StatusOr<GrayImage> ReadGrayImage(const std::string& path);
// The same from bytes in memory (`what` names the source in errors).
absl::StatusOr<GrayImage> DecodeGrayImage(absl::string_view bytes, const std::string& what);
// Writes 8-bit grayscale PNG.
absl::Status WriteGrayPng(const std::string& path, const GrayImage& image);
// Resizes with a triangle filter whose support widens with the downscale factor (antialiasing).
GrayImage ResizeGray(const GrayImage& in, int width, int height);
// Read, resize to width x height, normalize to [0, 1], optionally invert.
absl::StatusOr<std::vector<float>> LoadDigitImage(const std::string& path, int width, int height,
                                                  bool invert);

}  // namespace kiln
