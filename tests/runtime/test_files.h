// Small helpers for runtime tests: write bytes to a fresh temporary file.
#pragma once

#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace kiln::testing {

inline std::string WriteTemp(const std::string& name, const std::string& bytes) {
  std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  return path;
}

inline std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace kiln::testing
