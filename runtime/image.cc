#include "runtime/image.h"

#include <png.h>
#include <stdio.h>
// jpeglib.h needs stdio.h first.
#include <jpeglib.h>
#include <setjmp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace kiln {
namespace {

absl::StatusOr<GrayImage> ReadPng(const std::string& path) {
  png_image img;
  std::memset(&img, 0, sizeof(img));
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&img, path.c_str())) {
    return absl::DataLossError(absl::StrCat(path, ": not a readable PNG: ", img.message));
  }
  if (img.width == 0 || img.height == 0 || img.width > 16384 || img.height > 16384) {
    png_image_free(&img);
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": image size ", img.width, "x", img.height, " outside 1..16384"));
  }
  img.format = PNG_FORMAT_GRAY;
  GrayImage out;
  out.width = static_cast<int>(img.width);
  out.height = static_cast<int>(img.height);
  out.pixels.resize(PNG_IMAGE_SIZE(img));
  // A white background for transparent pixels, as most viewers show them.
  png_color background = {255, 255, 255};
  if (!png_image_finish_read(&img, &background, out.pixels.data(), 0, nullptr)) {
    return absl::DataLossError(absl::StrCat(path, ": PNG decode failed: ", img.message));
  }
  return out;
}

struct JpegError {
  jpeg_error_mgr mgr;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void OnJpegError(j_common_ptr cinfo) {
  auto* e = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  longjmp(e->jump, 1);
}

absl::StatusOr<GrayImage> ReadJpeg(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  jpeg_decompress_struct cinfo;
  JpegError err;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = OnJpegError;
  GrayImage out;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    std::fclose(f);
    return absl::DataLossError(absl::StrCat(path, ": JPEG decode failed: ", err.message));
  }
  jpeg_create_decompress(&cinfo);
  jpeg_stdio_src(&cinfo, f);
  jpeg_read_header(&cinfo, TRUE);
  cinfo.out_color_space = JCS_GRAYSCALE;
  if (cinfo.image_width == 0 || cinfo.image_height == 0 || cinfo.image_width > 16384 ||
      cinfo.image_height > 16384) {
    jpeg_destroy_decompress(&cinfo);
    std::fclose(f);
    return absl::InvalidArgumentError(absl::StrCat(path, ": image size outside 1..16384"));
  }
  jpeg_start_decompress(&cinfo);
  out.width = static_cast<int>(cinfo.output_width);
  out.height = static_cast<int>(cinfo.output_height);
  out.pixels.resize(static_cast<size_t>(out.width) * out.height);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = out.pixels.data() + static_cast<size_t>(cinfo.output_scanline) * out.width;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  std::fclose(f);
  return out;
}

// One separable pass: resamples `n_in` samples (stride `in_stride`) to `n_out`.
void Resample1D(const float* in, int n_in, int in_stride, float* out, int n_out, int out_stride) {
  double scale = static_cast<double>(n_in) / n_out;
  double support = std::max(1.0, scale);  // widen the triangle when shrinking (antialiasing)
  for (int o = 0; o < n_out; ++o) {
    double center = (o + 0.5) * scale;
    int lo = std::max(0, static_cast<int>(std::floor(center - support)));
    int hi = std::min(n_in - 1, static_cast<int>(std::ceil(center + support)));
    double sum = 0, wsum = 0;
    for (int i = lo; i <= hi; ++i) {
      double w = 1.0 - std::fabs((i + 0.5 - center) / support);
      if (w <= 0) continue;
      sum += w * in[static_cast<size_t>(i) * in_stride];
      wsum += w;
    }
    out[static_cast<size_t>(o) * out_stride] = static_cast<float>(wsum > 0 ? sum / wsum : 0);
  }
}

}  // namespace

absl::StatusOr<GrayImage> ReadGrayImage(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open image"));
  unsigned char sig[8] = {0};
  in.read(reinterpret_cast<char*>(sig), 8);
  if (in.gcount() >= 8 && png_sig_cmp(sig, 0, 8) == 0) return ReadPng(path);
  if (in.gcount() >= 3 && sig[0] == 0xFF && sig[1] == 0xD8 && sig[2] == 0xFF) return ReadJpeg(path);
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": unsupported image format: expected PNG or JPEG"));
}

absl::Status WriteGrayPng(const std::string& path, const GrayImage& image) {
  png_image img;
  std::memset(&img, 0, sizeof(img));
  img.version = PNG_IMAGE_VERSION;
  img.width = static_cast<png_uint_32>(image.width);
  img.height = static_cast<png_uint_32>(image.height);
  img.format = PNG_FORMAT_GRAY;
  if (!png_image_write_to_file(&img, path.c_str(), 0, image.pixels.data(), 0, nullptr)) {
    return absl::InternalError(absl::StrCat(path, ": PNG write failed: ", img.message));
  }
  return absl::OkStatus();
}

GrayImage ResizeGray(const GrayImage& in, int width, int height) {
  std::vector<float> src(in.pixels.begin(), in.pixels.end());
  std::vector<float> tmp(static_cast<size_t>(in.height) * width);
  for (int y = 0; y < in.height; ++y) {
    Resample1D(src.data() + static_cast<size_t>(y) * in.width, in.width, 1,
               tmp.data() + static_cast<size_t>(y) * width, width, 1);
  }
  std::vector<float> dst(static_cast<size_t>(height) * width);
  for (int x = 0; x < width; ++x)
    Resample1D(tmp.data() + x, in.height, width, dst.data() + x, height, width);
  GrayImage out;
  out.width = width;
  out.height = height;
  out.pixels.resize(dst.size());
  for (size_t i = 0; i < dst.size(); ++i) {
    out.pixels[i] = static_cast<uint8_t>(std::clamp(std::lround(dst[i]), 0L, 255L));
  }
  return out;
}

absl::StatusOr<std::vector<float>> LoadDigitImage(const std::string& path, int width, int height,
                                                  bool invert) {
  absl::StatusOr<GrayImage> img = ReadGrayImage(path);
  if (!img.ok()) return img.status();
  GrayImage small =
      (img->width == width && img->height == height) ? *img : ResizeGray(*img, width, height);
  std::vector<float> out(small.pixels.size());
  for (size_t i = 0; i < out.size(); ++i) {
    float v = small.pixels[i] / 255.0f;
    out[i] = invert ? 1.0f - v : v;
  }
  return out;
}

}  // namespace kiln
