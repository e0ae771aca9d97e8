// Writes the fuzz targets' seed corpus (one directory per target under argv[1]): valid and
// near-valid inputs made with Kiln's own writers, so fuzzing starts from the interesting shapes.
//   fuzz_seeds OUT_DIR EXAMPLE_PNG
#include <stdio.h>
// jpeglib.h needs stdio.h first.
#include <jpeglib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "runtime/image.h"
#include "runtime/manifest.h"
#include "runtime/safetensors.h"

namespace {

void Write(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

std::string Read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string Idx(int rank, const std::vector<uint32_t>& dims, size_t payload) {
  std::string s = {0, 0, 8, static_cast<char>(rank)};
  for (uint32_t d : dims) {
    for (int k = 3; k >= 0; --k) s += static_cast<char>((d >> (8 * k)) & 0xff);
  }
  for (size_t i = 0; i < payload; ++i) s += static_cast<char>(i * 37 % 251);
  return s;
}

void WriteJpeg(const std::string& path, int w, int h) {
  jpeg_compress_struct c;
  jpeg_error_mgr e;
  c.err = jpeg_std_error(&e);
  jpeg_create_compress(&c);
  FILE* f = std::fopen(path.c_str(), "wb");
  jpeg_stdio_dest(&c, f);
  c.image_width = w;
  c.image_height = h;
  c.input_components = 1;
  c.in_color_space = JCS_GRAYSCALE;
  jpeg_set_defaults(&c);
  jpeg_start_compress(&c, TRUE);
  std::vector<unsigned char> row(w);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) row[x] = static_cast<unsigned char>((x * y) & 0xff);
    JSAMPROW r = row.data();
    jpeg_write_scanlines(&c, &r, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  std::fclose(f);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  namespace fs = std::filesystem;
  const std::string out = argv[1];
  for (const char* t : {"idx", "safetensors", "manifest", "image", "name_map", "graph"}) {
    fs::create_directories(out + "/" + t);
  }
  // idx: the first byte picks the rank (1 + b % 3).
  Write(out + "/idx/labels", std::string(1, 0) + Idx(1, {5}, 5));
  Write(out + "/idx/images", std::string(1, 2) + Idx(3, {2, 3, 3}, 18));
  Write(out + "/idx/huge_dims", std::string(1, 2) + Idx(3, {0xffffffff, 0xffffffff, 2}, 4));
  kiln::Tensor w(kiln::ScalarType::kF32, {3, 2}), b(kiln::ScalarType::kI32, {2});
  bool ok = kiln::SaveSafetensors(out + "/safetensors/two", {{"fc.weight", &w}, {"step", &b}},
                                  {{"format", "kiln-checkpoint-1"}, {"epoch", "1"}})
                .ok();
  ok = ok && kiln::SaveSafetensors(out + "/safetensors/empty", {}).ok();
  kiln::AotManifest m;
  m.name = "p";
  m.target = "x86-64-linux";
  m.optimizer = "sgd";
  m.batch = 2;
  m.eval_batch = 3;
  m.train.inputs = {{"image", kiln::ArgRole::kData, kiln::ScalarType::kU8, {2, 4}, {}},
                    {"w",
                     kiln::ArgRole::kParam,
                     kiln::ScalarType::kF32,
                     {4, 2},
                     kiln::Initializer::KaimingUniform()}};
  m.train.outputs = {{"loss", kiln::ArgRole::kLoss, kiln::ScalarType::kF32, {}, {}}};
  m.eval.inputs = {{"image", kiln::ArgRole::kData, kiln::ScalarType::kU8, {3, 4}, {}}};
  m.eval.outputs = {{"prediction", kiln::ArgRole::kOutput, kiln::ScalarType::kI32, {3}, {}}};
  Write(out + "/manifest/small.json", kiln::ManifestToJson(m));
  m.segments["train"].intermediates = {
      {"segment_3", kiln::ArgRole::kData, kiln::ScalarType::kF32, {2, 2}, {}}};
  m.segments["train"].parts = {{{}, {-1}}, {{0}, {0}}};
  Write(out + "/manifest/segmented.json", kiln::ManifestToJson(m));
  Write(out + "/image/digit.png", Read(argv[2]));
  kiln::GrayImage tiny{3, 2, {0, 50, 100, 150, 200, 250}};
  ok = ok && kiln::WriteGrayPng(out + "/image/tiny.png", tiny).ok();
  WriteJpeg(out + "/image/gradient.jpg", 9, 7);
  Write(out + "/name_map/map",
        "# kiln  file  [transpose]\nfc.weight classifier.weight transpose\n"
        "fc.bias classifier.bias\n");
  Write(out + "/graph/seed1", std::string("\x01\x02\x03\x04\x02\x05\x00\x01\x08\x00\x01\x03", 12));
  Write(out + "/graph/seed2", std::string("\x00\x04\x02\x03\x05\x05\x01\x00\x0f\x02\x01\x10", 12));
  if (!ok) {
    std::fprintf(stderr, "make_seeds: could not write the safetensors or PNG seeds in %s\n",
                 out.c_str());
    return 1;
  }
  std::printf("fuzz seeds written to %s\n", out.c_str());
  return 0;
}
