#include "runtime/weights_import.h"

#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/status.h"

namespace kiln {

absl::StatusOr<std::vector<NameMapEntry>> ParseNameMap(const std::string& text,
                                                       const std::string& what) {
  std::vector<NameMapEntry> out;
  std::set<std::string> targets;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = line.substr(0, line.find('#'));
    std::vector<std::string> f = absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (f.empty()) continue;
    if (f.size() < 2 || f.size() > 3 || (f.size() == 3 && f[2] != "transpose")) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ":", line_no, ": expected '<kiln name> <name in the file> [transpose]', got '",
          std::string(line), "'"));
    }
    if (!targets.insert(f[0]).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ":", line_no, ": '", f[0], "' is mapped twice"));
    }
    out.push_back({f[0], f[1], f.size() == 3});
  }
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat(what, ": the name map is empty"));
  return out;
}

absl::StatusOr<std::vector<NameMapEntry>> ParseNameMapFile(const std::string& path) {
  std::ifstream f(path);
  if (!f) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::stringstream ss;
  ss << f.rdbuf();
  if (ss.str().size() > (1u << 20)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": more than 1 MiB"));
  }
  return ParseNameMap(ss.str(), path);
}

absl::StatusOr<SafetensorsFile> ImportSafetensors(const std::string& path,
                                                  const std::vector<NameMapEntry>& map) {
  KILN_ASSIGN_OR_RETURN(SafetensorsFile in, LoadSafetensors(path));
  SafetensorsFile out;
  out.metadata = in.metadata;
  for (const NameMapEntry& e : map) {
    const Tensor* t = in.Find(e.source);
    if (t == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": the name map's '", e.source,
                                                     "' (for '", e.kiln, "') is not in the file"));
    }
    if (t->type() != ScalarType::kF32 && t->type() != ScalarType::kF64) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": '", e.source, "' is ",
                                                     ScalarTypeName(t->type()),
                                                     ", expected F32 or F64 weights"));
    }
    if (!e.transpose) {
      out.tensors.emplace_back(e.kiln, *t);
      continue;
    }
    if (t->shape().size() != 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": '", e.source, "' ", ShapeString(t->shape()), " cannot be transposed (not 2-D)"));
    }
    const int64_t r = t->shape()[0], c = t->shape()[1], sz = ScalarSize(t->type());
    Tensor tr(t->type(), {c, r});
    const auto* src = static_cast<const char*>(t->raw());
    auto* dst = static_cast<char*>(tr.raw());
    for (int64_t i = 0; i < r; ++i) {
      for (int64_t j = 0; j < c; ++j)
        std::memcpy(dst + (j * r + i) * sz, src + (i * c + j) * sz, sz);
    }
    out.tensors.emplace_back(e.kiln, std::move(tr));
  }
  return out;
}

}  // namespace kiln
