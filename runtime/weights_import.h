// Weights written elsewhere (e.g. a PyTorch state dict saved as safetensors) into a Kiln model of
// the same architecture, through a small name map the user writes: one line per Kiln parameter,
//   <kiln name>  <name in the file>  [transpose]
// with '#' comments. `transpose` swaps a 2-D tensor's axes (PyTorch's Linear stores [out, in],
// Kiln's [in, out]). Every mapped name must exist in the file, every target name once.
//
//   auto map = kiln::ParseNameMapFile("torch_cnn.map");
//   auto weights = kiln::ImportSafetensors("torch_cnn.safetensors", *map);
//   KILN_RETURN_IF_ERROR(trainer.LoadFrom(*weights, "torch_cnn.safetensors", false));
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/safetensors.h"

namespace kiln {

struct NameMapEntry {
  std::string kiln;
  std::string source;
  bool transpose = false;
};

// InvalidArgument naming `what` and the line for malformed lines or duplicate targets.
absl::StatusOr<std::vector<NameMapEntry>> ParseNameMap(const std::string& text,
                                                       const std::string& what);
absl::StatusOr<std::vector<NameMapEntry>> ParseNameMapFile(const std::string& path);

// The mapped tensors of `path` under their Kiln names (float32 or float64 only), transposed where
// asked. Tensors of the file that no line maps are ignored.
absl::StatusOr<SafetensorsFile> ImportSafetensors(const std::string& path,
                                                  const std::vector<NameMapEntry>& map);

}  // namespace kiln
