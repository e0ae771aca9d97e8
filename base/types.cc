#include "base/types.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace kiln {

std::string ShapeString(const Shape& s) { return absl::StrCat("[", absl::StrJoin(s, ", "), "]"); }

const char* DTypeName(DType t) {
  switch (t) {
    case DType::kFloat:
      return "float";
    case DType::kInt32:
      return "int32";
    case DType::kUInt8:
      return "uint8";
  }
  return "?";
}

std::string InitializerString(const Initializer& init) {
  using K = Initializer::Kind;
  switch (init.kind) {
    case K::kZeros:
      return "zeros";
    case K::kConstant:
      return absl::StrCat("constant(", init.a, ")");
    case K::kUniform:
      return absl::StrCat("uniform(", init.a, ", ", init.b, ")");
    case K::kNormal:
      return absl::StrCat("normal(", init.a, ", ", init.b, ")");
    case K::kXavierUniform:
      return "xavier_uniform";
    case K::kXavierNormal:
      return "xavier_normal";
    case K::kKaimingUniform:
      return "kaiming_uniform";
    case K::kKaimingNormal:
      return "kaiming_normal";
    case K::kTruncatedNormal:
      return absl::StrCat("truncated_normal(", init.a, ", ", init.b, ")");
  }
  return "?";
}

}  // namespace kiln
