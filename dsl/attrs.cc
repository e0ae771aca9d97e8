#include "dsl/attrs.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"

namespace kiln {
namespace {

// Writes "name=value" for each field it visits, joined by `separator`; with `exact`, reals in
// hexadecimal floating point (every bit), otherwise as short decimals.
class FieldWriter {
 public:
  FieldWriter(bool exact, const char* separator) : exact_(exact), separator_(separator) {}
  void operator()(absl::string_view name, int64_t v) { Add(name, absl::StrCat(v)); }
  void operator()(absl::string_view name, bool v) { Add(name, v ? "true" : "false"); }
  void operator()(absl::string_view name, double v) {
    Add(name, exact_ ? absl::StrFormat("%a", v) : absl::StrCat(v));
  }
  void operator()(absl::string_view name, const std::vector<int64_t>& v) {
    Add(name, absl::StrCat("[", absl::StrJoin(v, ","), "]"));
  }
  const std::string& text() const { return text_; }

 private:
  void Add(absl::string_view name, absl::string_view value) {
    absl::StrAppend(&text_, text_.empty() ? "" : separator_, name, "=", value);
  }
  bool exact_;
  const char* separator_;
  std::string text_;
};

std::string WriteFields(const OpAttrs& op, bool exact, const char* separator) {
  FieldWriter w(exact, separator);
  std::visit([&](const auto& a) { a.Fields(w); }, op);
  return w.text();
}

}  // namespace

const char* Attrs::TypeName() const {
  return std::visit([](const auto& a) { return std::decay_t<decltype(a)>::kName; }, op);
}

std::string Attrs::Key() const {
  return absl::StrCat(TypeName(), "{", WriteFields(op, /*exact=*/true, ","), "}");
}

std::string Attrs::ToString() const {
  std::string fields = WriteFields(op, /*exact=*/false, " ");
  return fields.empty() ? fields : absl::StrCat(" ", fields);
}

}  // namespace kiln
