#include "runtime/aot_program.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace kiln {

absl::StatusOr<std::unique_ptr<Executable>> MakeAotStep(const AotManifest& m,
                                                        const std::string& key,
                                                        const Signature& sig,
                                                        AotStepEntries entries) {
  auto it = m.segments.find(key);
  const size_t want = it == m.segments.end() ? 1 : it->second.parts.size();
  if (entries.entries == nullptr || entries.count < 0 ||
      static_cast<size_t>(entries.count) != want) {
    return absl::FailedPreconditionError(absl::StrCat(
        m.name, ": the manifest's ", key, " step has ", want, " pipeline(s), the binary holds ",
        entries.entries == nullptr ? 0 : entries.count, " (a binary from another build?)"));
  }
  if (it == m.segments.end()) {
    return MakeNativeExecutable(sig, entries.entries[0].fn, entries.entries[0].metadata, nullptr);
  }
  std::vector<std::unique_ptr<Executable>> steps;
  for (size_t k = 0; k < want; ++k) {
    auto step = MakeNativeExecutable(SegmentSignature(sig, it->second, k), entries.entries[k].fn,
                                     entries.entries[k].metadata, nullptr);
    if (!step.ok()) {
      return absl::Status(step.status().code(), absl::StrCat(key, " segment ", k + 1, " of ", want,
                                                             ": ", step.status().message()));
    }
    steps.push_back(std::move(*step));
  }
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<SegmentedStep> step,
                        SegmentedStep::Make(sig, it->second, std::move(steps)));
  return std::unique_ptr<Executable>(std::move(step));
}

}  // namespace kiln
