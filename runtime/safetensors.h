// Checkpoints in the safetensors format, readable by NumPy/PyTorch users: an 8-byte little-endian
// header length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}},
// then the raw little-endian data.
//
//   KILN_RETURN_IF_ERROR(kiln::SaveSafetensors("model.safetensors", {{"fc.weight", &w}}, meta));
//   absl::StatusOr<kiln::SafetensorsFile> f = kiln::LoadSafetensors("model.safetensors");
//
// Saving is atomic (temporary file, fsync, rename, fsync of the directory): a crash leaves the
// previous file intact. Loading validates the header length (at most 100 MB and inside the file),
// the JSON (duplicate keys are rejected), every dtype, shape and offset (contiguous, in bounds,
// matching the shape) and returns DataLoss naming the file and the problem.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "base/tensor.h"

namespace kiln {

struct SafetensorsFile {
  std::vector<std::pair<std::string, Tensor>> tensors;  // in file order of data offsets
  std::map<std::string, std::string> metadata;
  const Tensor* Find(const std::string& name) const;
};

constexpr int64_t kMaxSafetensorsHeader = 100 * 1000 * 1000;

absl::Status SaveSafetensors(const std::string& path,
                             const std::vector<std::pair<std::string, const Tensor*>>& tensors,
                             const std::map<std::string, std::string>& metadata = {});

absl::StatusOr<SafetensorsFile> LoadSafetensors(const std::string& path);

// Fault injection for tests (tests/runtime/crash_safety_test.cc): the hook is called at each step
// of a save. At kWrite, *len is the size of the next write() and may be lowered (a short write);
// a non-zero return is taken as that errno from the step (ENOSPC: disk full). A hook may also
// end the process (SIGKILL) to test what a crash at that point leaves on disk. Null: no hook.
enum class SavePoint { kOpened, kWrite, kBeforeFsync, kAfterFsync, kBeforeRename, kAfterRename };
using SaveFaultHook = int (*)(SavePoint point, size_t* len);
void SetSaveFaultHookForTesting(SaveFaultHook hook);
// The same from bytes in memory (`what` names the source in errors).
absl::StatusOr<SafetensorsFile> ParseSafetensors(const std::string& bytes, const std::string& what);

}  // namespace kiln
