#include "runtime/image.h"

#include <stdio.h>
// jpeglib.h needs stdio.h first.
#include <jpeglib.h>

#include "gtest/gtest.h"
#include "tests/runtime/test_files.h"

namespace kiln {
namespace {

GrayImage Gradient(int w, int h) {
  GrayImage g;
  g.width = w;
  g.height = h;
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) g.pixels.push_back(static_cast<uint8_t>((x * 255) / (w - 1)));
  }
  return g;
}

void WriteJpeg(const std::string& path, const GrayImage& img) {
  FILE* f = fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  jpeg_compress_struct c;
  jpeg_error_mgr err;
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  jpeg_stdio_dest(&c, f);
  c.image_width = img.width;
  c.image_height = img.height;
  c.input_components = 1;
  c.in_color_space = JCS_GRAYSCALE;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, 100, TRUE);
  jpeg_start_compress(&c, TRUE);
  for (int y = 0; y < img.height; ++y) {
    JSAMPROW row = const_cast<uint8_t*>(img.pixels.data()) + y * img.width;
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  fclose(f);
}

TEST(ImageTest, PngRoundTrip) {
  GrayImage g = Gradient(28, 28);
  std::string path = ::testing::TempDir() + "/g.png";
  ASSERT_TRUE(WriteGrayPng(path, g).ok());
  auto r = ReadGrayImage(path);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->width, 28);
  EXPECT_EQ(r->pixels, g.pixels);
}

TEST(ImageTest, ReadsJpegAsGray) {
  GrayImage g = Gradient(40, 30);
  std::string path = ::testing::TempDir() + "/g.jpg";
  WriteJpeg(path, g);
  auto r = ReadGrayImage(path);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->width, 40);
  EXPECT_EQ(r->height, 30);
  EXPECT_NEAR(r->pixels[20], g.pixels[20], 3);
}

TEST(ImageTest, ResizeKeepsConstantsAndAveragesStripes) {
  GrayImage c;
  c.width = c.height = 100;
  c.pixels.assign(100 * 100, 77);
  GrayImage s = ResizeGray(c, 28, 28);
  for (uint8_t p : s.pixels) ASSERT_EQ(p, 77);
  // One-pixel black/white stripes shrunk 4x: antialiasing averages them to mid-gray instead of
  // sampling one color.
  GrayImage stripes;
  stripes.width = stripes.height = 112;
  for (int y = 0; y < 112; ++y) {
    for (int x = 0; x < 112; ++x) stripes.pixels.push_back(x % 2 ? 255 : 0);
  }
  GrayImage r = ResizeGray(stripes, 28, 28);
  for (uint8_t p : r.pixels) ASSERT_NEAR(p, 128, 20);
}

TEST(ImageTest, LoadDigitNormalizesResizesAndInverts) {
  GrayImage g = Gradient(56, 56);
  std::string path = ::testing::TempDir() + "/digit.png";
  ASSERT_TRUE(WriteGrayPng(path, g).ok());
  auto x = LoadDigitImage(path, 28, 28, false);
  ASSERT_TRUE(x.ok()) << x.status();
  ASSERT_EQ(x->size(), 784u);
  EXPECT_LT((*x)[0], 0.1f);
  EXPECT_GT((*x)[27], 0.9f);
  auto inv = LoadDigitImage(path, 28, 28, true);
  EXPECT_NEAR((*inv)[0], 1.0f - (*x)[0], 1e-6);
}

TEST(ImageTest, RejectsOtherFormatsAndMissingFiles) {
  std::string p = testing::WriteTemp("not_an_image.bmp", "BM........");
  auto r = ReadGrayImage(p);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("expected PNG or JPEG"), std::string::npos);
  EXPECT_EQ(ReadGrayImage("/nonexistent.png").status().code(), absl::StatusCode::kNotFound);
  std::string bad_png = testing::WriteTemp("bad.png", std::string("\x89PNG\r\n\x1a\n", 8) + "junk");
  EXPECT_EQ(ReadGrayImage(bad_png).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace kiln

namespace kiln {
namespace {

// A PNG header claiming 100000 x 100000 pixels is refused before the pixels are allocated.
TEST(ImageHostileTest, HugeDeclaredSizeIsRefusedFromTheHeader) {
  GrayImage tiny{2, 2, {0, 1, 2, 3}};
  const std::string path = ::testing::TempDir() + "/tiny.png";
  ASSERT_TRUE(WriteGrayPng(path, tiny).ok());
  std::string png = kiln::testing::ReadAll(path);
  // IHDR width and height are the big-endian words at offsets 16 and 20.
  for (int off : {16, 20}) {
    png[off] = 0, png[off + 1] = 0x01, png[off + 2] = static_cast<char>(0x86),
    png[off + 3] = static_cast<char>(0xA0);
  }
  // A valid CRC over the chunk type and data (bytes 12..28), so only the size is wrong.
  uint32_t crc = 0xffffffffu;
  for (int i = 12; i < 29; ++i) {
    crc ^= static_cast<unsigned char>(png[i]);
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
  }
  crc ^= 0xffffffffu;
  for (int i = 0; i < 4; ++i) png[29 + i] = static_cast<char>(crc >> (24 - 8 * i));
  auto r = DecodeGrayImage(png, "huge.png");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  EXPECT_NE(r.status().message().find("huge.png: image size 100000x100000 outside"),
            std::string::npos)
      << r.status();
  EXPECT_FALSE(DecodeGrayImage("\x89PNG", "short.png").ok());
  EXPECT_FALSE(DecodeGrayImage(std::string("\xff\xd8\xff\x00", 4), "short.jpg").ok());
}

}  // namespace
}  // namespace kiln
