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

// Decoded images are at most kMaxSide pixels on a side and kMaxPixels in all, checked from the
// header before the pixel buffer is allocated.
constexpr uint32_t kMaxSide = 8192;
constexpr uint64_t kMaxPixels = uint64_t{1} << 25;

absl::Status CheckSize(const std::string& what, uint64_t w, uint64_t h) {
  if (w == 0 || h == 0 || w > kMaxSide || h > kMaxSide || w * h > kMaxPixels) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": image size ", w, "x", h, " outside 1..8192 per side, 2^25 pixels"));
  }
  return absl::OkStatus();
}

absl::StatusOr<GrayImage> DecodePng(absl::string_view bytes, const std::string& what) {
  png_image img;
  std::memset(&img, 0, sizeof(img));
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&img, bytes.data(), bytes.size())) {
    return absl::DataLossError(absl::StrCat(what, ": not a readable PNG: ", img.message));
  }
  if (absl::Status s = CheckSize(what, img.width, img.height); !s.ok()) {
    png_image_free(&img);
    return s;
  }
  img.format = PNG_FORMAT_GRAY;
  GrayImage out;
  out.width = static_cast<int>(img.width);
  out.height = static_cast<int>(img.height);
  out.pixels.resize(PNG_IMAGE_SIZE(img));
  // A white background for transparent pixels, as most viewers show them.
  png_color background = {255, 255, 255};
  if (!png_image_finish_read(&img, &background, out.pixels.data(), 0, nullptr)) {
    png_image_free(&img);
    return absl::DataLossError(absl::StrCat(what, ": PNG decode failed: ", img.message));
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

void QuietJpegWarning(j_common_ptr, int) {}

absl::StatusOr<GrayImage> DecodeJpeg(absl::string_view bytes, const std::string& what) {
  jpeg_decompress_struct cinfo;
  JpegError err;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = OnJpegError;
  err.mgr.emit_message = QuietJpegWarning;
  // Declared before setjmp: longjmp leaves locals changed after it indeterminate.
  GrayImage out;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return absl::DataLossError(absl::StrCat(what, ": JPEG decode failed: ", err.message));
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, reinterpret_cast<const unsigned char*>(bytes.data()),
               static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&cinfo, TRUE);
  cinfo.out_color_space = JCS_GRAYSCALE;
  if (absl::Status s = CheckSize(what, cinfo.image_width, cinfo.image_height); !s.ok()) {
    jpeg_destroy_decompress(&cinfo);
    return s;
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

absl::StatusOr<GrayImage> DecodeGrayImage(absl::string_view bytes, const std::string& what) {
  const auto* sig = reinterpret_cast<const unsigned char*>(bytes.data());
  if (bytes.size() >= 8 && png_sig_cmp(sig, 0, 8) == 0) return DecodePng(bytes, what);
  if (bytes.size() >= 3 && sig[0] == 0xFF && sig[1] == 0xD8 && sig[2] == 0xFF) {
    return DecodeJpeg(bytes, what);
  }
  return absl::InvalidArgumentError(
      absl::StrCat(what, ": unsupported image format: expected PNG or JPEG"));
}

absl::StatusOr<GrayImage> ReadGrayImage(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open image"));
  const std::streamoff size = in.tellg();
  if (size < 0 || size > (std::streamoff{64} << 20)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", size, " bytes (at most 64 MiB)"));
  }
  std::string bytes(static_cast<size_t>(size), '\0');
  in.seekg(0);
  in.read(bytes.data(), size);
  if (!in) return absl::DataLossError(absl::StrCat(path, ": read error"));
  return DecodeGrayImage(bytes, path);
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
