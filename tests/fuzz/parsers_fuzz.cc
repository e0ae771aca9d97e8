// libFuzzer targets for every parser of outside input, one binary each (KILN_FUZZ_TARGET picks
// the function): IDX files, safetensors checkpoints (with metadata), the AOT manifest, image files
// for --predict, and weight-import name maps. Every input must come back as a value or a Status:
// no crash, no sanitizer report, no allocation beyond the input's own bounds.
#include <cstddef>
#include <cstdint>
#include <string>

#include "runtime/idx.h"
#include "runtime/image.h"
#include "runtime/manifest.h"
#include "runtime/safetensors.h"
#include "runtime/weights_import.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
#if KILN_FUZZ_TARGET == 1
  // The rank comes from the first byte so both image (3) and label (1) files are explored.
  if (size == 0) return 0;
  auto r = kiln::ParseIdx(absl::string_view(bytes).substr(1), 1 + data[0] % 3, "fuzz.idx");
  if (r.ok() && static_cast<int64_t>(r->data.size()) != kiln::NumElements(r->shape))
    __builtin_trap();
#elif KILN_FUZZ_TARGET == 2
  auto r = kiln::ParseSafetensors(bytes, "fuzz.safetensors");
  if (r.ok()) {
    for (const auto& [name, t] : r->tensors) {
      if (t.bytes() != kiln::NumElements(t.shape()) * kiln::ScalarSize(t.type())) __builtin_trap();
    }
  }
#elif KILN_FUZZ_TARGET == 3
  auto r = kiln::ParseManifest(bytes);
  if (r.ok() && !kiln::ParseManifest(kiln::ManifestToJson(*r)).ok()) __builtin_trap();
#elif KILN_FUZZ_TARGET == 4
  auto r = kiln::DecodeGrayImage(bytes, "fuzz.image");
  if (r.ok() && r->pixels.size() != static_cast<size_t>(r->width) * r->height) __builtin_trap();
#elif KILN_FUZZ_TARGET == 5
  (void)kiln::ParseNameMap(bytes, "fuzz.map");
#else
#error "KILN_FUZZ_TARGET must be 1..5"
#endif
  return 0;
}
