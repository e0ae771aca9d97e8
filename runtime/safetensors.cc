#include "runtime/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace kiln {
namespace {

using Json = nlohmann::json;

absl::StatusOr<ScalarType> ParseDType(const std::string& s) {
  if (s == "F32") return ScalarType::kF32;
  if (s == "F64") return ScalarType::kF64;
  if (s == "I32") return ScalarType::kI32;
  if (s == "U8") return ScalarType::kU8;
  return absl::DataLossError(
      absl::StrCat("unsupported dtype \"", s, "\": expected one of F32, F64, I32, U8"));
}

std::atomic<SaveFaultHook> fault_hook{nullptr};

// The hook's verdict at `point` (0: go on), or 0 without a hook.
int Fault(SavePoint point, size_t* len = nullptr) {
  SaveFaultHook h = fault_hook.load();
  size_t unused = 0;
  return h ? h(point, len ? len : &unused) : 0;
}

absl::Status WriteAll(int fd, const char* p, size_t n, const std::string& path) {
  while (n > 0) {
    size_t chunk = n;
    if (int e = Fault(SavePoint::kWrite, &chunk); e != 0) {
      return absl::ResourceExhaustedError(absl::StrCat(path, ": write failed: ", std::strerror(e)));
    }
    ssize_t w = ::write(fd, p, std::min(chunk, n));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      return (errno == ENOSPC || errno == EDQUOT ? absl::ResourceExhaustedError
                                                 : absl::InternalError)(
          absl::StrCat(path, ": write failed: ", std::strerror(errno)));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return absl::OkStatus();
}

}  // namespace

void SetSaveFaultHookForTesting(SaveFaultHook hook) { fault_hook.store(hook); }

const Tensor* SafetensorsFile::Find(const std::string& name) const {
  for (const auto& [n, t] : tensors) {
    if (n == name) return &t;
  }
  return nullptr;
}

absl::Status SaveSafetensors(const std::string& path,
                             const std::vector<std::pair<std::string, const Tensor*>>& tensors,
                             const std::map<std::string, std::string>& metadata) {
  Json header = Json::object();
  std::set<std::string> names;
  int64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__" || !names.insert(name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": duplicate or reserved tensor name '", name, "'"));
    }
    header[name] = {{"dtype", ScalarTypeName(t->type())},
                    {"shape", t->shape()},
                    {"data_offsets", {offset, offset + t->bytes()}}};
    offset += t->bytes();
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');  // align the data to 8 bytes
  uint64_t n = json.size();
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));

  std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int e = errno;
    const std::string dir =
        path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/'));
    return absl::NotFoundError(absl::StrCat(
        path, ": cannot save: ", std::strerror(e),
        e == ENOENT ? absl::StrCat(" (the directory '", dir, "' does not exist)") : ""));
  }
  absl::Status s;
  if (int e = Fault(SavePoint::kOpened); e != 0) {
    s = absl::InternalError(absl::StrCat(path, ": ", std::strerror(e)));
  }
  if (s.ok()) s = WriteAll(fd, reinterpret_cast<const char*>(len), 8, path);
  if (s.ok()) s = WriteAll(fd, json.data(), json.size(), path);
  for (const auto& [name, t] : tensors) {
    if (s.ok())
      s = WriteAll(fd, static_cast<const char*>(t->raw()), static_cast<size_t>(t->bytes()), path);
  }
  if (int e = s.ok() ? Fault(SavePoint::kBeforeFsync) : 0; e != 0) {
    s = absl::InternalError(absl::StrCat(path, ": fsync failed: ", std::strerror(e)));
  }
  if (s.ok() && ::fsync(fd) != 0) {
    s = absl::InternalError(absl::StrCat(path, ": fsync failed: ", std::strerror(errno)));
  }
  if (int e = s.ok() ? Fault(SavePoint::kAfterFsync) : 0; e != 0) {
    s = absl::InternalError(absl::StrCat(path, ": ", std::strerror(e)));
  }
  if (::close(fd) != 0 && s.ok()) {
    s = absl::InternalError(absl::StrCat(path, ": close failed: ", std::strerror(errno)));
  }
  if (int e = s.ok() ? Fault(SavePoint::kBeforeRename) : 0; e != 0) {
    s = absl::InternalError(absl::StrCat(path, ": rename failed: ", std::strerror(e)));
  }
  if (s.ok() && std::rename(tmp.c_str(), path.c_str()) != 0) {
    s = absl::InternalError(absl::StrCat(path, ": rename failed: ", std::strerror(errno)));
  }
  if (s.ok()) Fault(SavePoint::kAfterRename);
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  std::string dir = path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/'));
  int dfd = ::open(dir.empty() ? "/" : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return absl::OkStatus();
}

absl::StatusOr<SafetensorsFile> ParseSafetensors(const std::string& bytes,
                                                 const std::string& what) {
  auto bad = [&](const std::string& msg) {
    return absl::DataLossError(absl::StrCat(what, ": ", msg));
  };
  if (bytes.size() < 8) return bad("truncated: shorter than the 8-byte header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  // A header length that cannot be (shorter than "{}", longer than the file) with no JSON object
  // after it: another kind of file, not a damaged checkpoint.
  if ((n < 2 || n > bytes.size() - 8) && (bytes.size() < 9 || bytes[8] != '{')) {
    std::string kind;
    if (bytes.compare(0, 4, "\x89PNG") == 0) kind = " (it is a PNG image)";
    if (static_cast<unsigned char>(bytes[0]) == 0xFF &&
        static_cast<unsigned char>(bytes[1]) == 0xD8)
      kind = " (it is a JPEG image)";
    if (bytes[0] == 0 && bytes[1] == 0 && bytes[2] == 8) kind = " (it is an IDX data file)";
    return bad(
        absl::StrCat("not a safetensors file", kind,
                     ": expected an 8-byte header length followed by a JSON header '{...}'"));
  }
  if (n > static_cast<uint64_t>(kMaxSafetensorsHeader)) {
    return bad(absl::StrCat("header length ", n, " exceeds the 100 MB limit"));
  }
  if (n > bytes.size() - 8) {
    return bad(absl::StrCat("truncated: header length ", n, " but only ", bytes.size() - 8,
                            " bytes follow"));
  }
  std::string_view header(bytes.data() + 8, n);
  // nlohmann keeps the last of duplicate keys silently; a parse callback sees every key.
  std::string duplicate;
  std::vector<std::set<std::string>> keys;
  Json::parser_callback_t cb = [&](int depth, Json::parse_event_t ev, Json& parsed) {
    if (ev == Json::parse_event_t::object_start) keys.emplace_back();
    if (ev == Json::parse_event_t::object_end && !keys.empty()) keys.pop_back();
    if (ev == Json::parse_event_t::key && !keys.empty()) {
      std::string k = parsed.get<std::string>();
      if (!keys.back().insert(k).second && duplicate.empty()) duplicate = k;
    }
    (void)depth;
    return true;
  };
  Json j = Json::parse(header.begin(), header.end(), cb, /*allow_exceptions=*/false);
  if (j.is_discarded()) return bad("header is not valid JSON");
  if (!duplicate.empty()) return bad(absl::StrCat("duplicate key \"", duplicate, "\" in header"));
  if (!j.is_object()) return bad("header is not a JSON object");

  SafetensorsFile out;
  const uint64_t data_size = bytes.size() - 8 - n;
  struct Entry {
    std::string name;
    ScalarType type;
    Shape shape;
    uint64_t begin, end;
  };
  std::vector<Entry> entries;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const Json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) return bad("__metadata__ must be an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) {
          return bad(absl::StrCat("__metadata__ value of \"", m.key(), "\" is not a string"));
        }
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    std::string where = absl::StrCat("tensor \"", name, "\": ");
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") ||
        !v.contains("data_offsets")) {
      return bad(where + "expected an object with dtype, shape and data_offsets");
    }
    if (!v["dtype"].is_string()) return bad(where + "dtype is not a string");
    absl::StatusOr<ScalarType> type = ParseDType(v["dtype"].get<std::string>());
    if (!type.ok()) return bad(where + std::string(type.status().message()));
    Entry e{name, *type, {}, 0, 0};
    if (!v["shape"].is_array()) return bad(where + "shape is not an array");
    uint64_t elems = 1;
    for (const Json& d : v["shape"]) {
      if (!d.is_number_unsigned())
        return bad(where + "shape entries must be non-negative integers");
      uint64_t dim = d.get<uint64_t>();
      if (dim > data_size || (dim != 0 && elems > data_size / dim)) {
        return bad(where + "shape " + v["shape"].dump() + " is larger than the file's data");
      }
      elems *= dim;
      e.shape.push_back(static_cast<int64_t>(dim));
    }
    const Json& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
        !off[1].is_number_unsigned()) {
      return bad(where + "data_offsets must be [begin, end]");
    }
    e.begin = off[0].get<uint64_t>();
    e.end = off[1].get<uint64_t>();
    if (e.begin > e.end || e.end > data_size) {
      return bad(absl::StrCat(where, "data_offsets [", e.begin, ", ", e.end,
                              "] out of bounds of the ", data_size, "-byte data section"));
    }
    if (e.end - e.begin != elems * static_cast<uint64_t>(ScalarSize(e.type))) {
      return bad(absl::StrCat(where, "data_offsets span ", e.end - e.begin, " bytes, expected ",
                              elems * ScalarSize(e.type), " for ", v["dtype"].get<std::string>(),
                              v["shape"].dump()));
    }
    entries.push_back(std::move(e));
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin < b.begin || (a.begin == b.begin && a.end < b.end);
  });
  uint64_t expect = 0;
  for (const Entry& e : entries) {
    if (e.begin != expect) {
      return bad(absl::StrCat("tensor \"", e.name, "\" starts at ", e.begin, ", expected ", expect,
                              " (offsets must be contiguous, without gaps or overlaps)"));
    }
    expect = e.end;
  }
  if (expect != data_size) {
    return bad(absl::StrCat("data section is ", data_size, " bytes, tensors cover ", expect));
  }
  const char* data = bytes.data() + 8 + n;
  for (const Entry& e : entries) {
    Tensor t(e.type, e.shape);
    std::memcpy(t.raw(), data + e.begin, static_cast<size_t>(e.end - e.begin));
    out.tensors.emplace_back(e.name, std::move(t));
  }
  return out;
}

absl::StatusOr<SafetensorsFile> LoadSafetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open checkpoint"));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ParseSafetensors(ss.str(), path);
}

}  // namespace kiln
