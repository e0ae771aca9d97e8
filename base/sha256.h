// SHA-256 (FIPS 180-4), for content keys such as the compile cache's.
//
//   std::string hex = kiln::Sha256Hex("abc");  // "ba7816bf..."
#pragma once

#include <cstddef>
#include <string>

namespace kiln {

std::string Sha256Hex(const void* data, size_t size);
inline std::string Sha256Hex(const std::string& s) { return Sha256Hex(s.data(), s.size()); }

}  // namespace kiln
