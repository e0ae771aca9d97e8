// Training checkpoints: the model's parameters and state (ParameterStore) and the counters that,
// with them, determine the rest of a run, in one safetensors file written atomically.
//
//   KILN_RETURN_IF_ERROR(kiln::SaveCheckpoint("ckpt.safetensors", store, counters, {}));
//   KILN_ASSIGN_OR_RETURN(kiln::SafetensorsFile f, kiln::LoadSafetensors("ckpt.safetensors"));
//   KILN_ASSIGN_OR_RETURN(counters, kiln::RestoreCheckpoint(f, "ckpt.safetensors", store,
//   counters));
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "runtime/parameter_store.h"
#include "runtime/safetensors.h"

namespace kiln {

struct TrainingCounters {
  int64_t step = 0;            // training steps taken
  int epoch = 0;               // epochs completed
  int64_t batch_in_epoch = 0;  // batches of the next epoch already taken (an interrupted epoch)
  uint64_t seed = 1;           // initialization and shuffling
  // The run that took the batches: its global batch (every rank's batch summed; 0: unknown) and
  // ranks. batch_in_epoch counts its global batches, so another global batch resumes at the next
  // epoch boundary.
  int64_t global_batch = 0;
  int ranks = 1;
};

// The store's current tensors under their names (a resident step's running sums are scratch and
// left out), the counters and `metadata` as safetensors metadata ("format": "kiln-checkpoint-1").
absl::Status SaveCheckpoint(const std::string& path, const ParameterStore& store,
                            const TrainingCounters& counters,
                            const std::map<std::string, std::string>& metadata);

// Copies `f`'s tensors into the store's current halves. Every parameter must be present with its
// type and shape (InvalidArgument naming it and `path`); state present is restored, state absent
// keeps its value (e.g. weights from another optimizer). Returns the file's counters, with
// `current`'s for those it lacks (files written elsewhere); DataLoss for a malformed one.
absl::StatusOr<TrainingCounters> RestoreCheckpoint(const SafetensorsFile& f,
                                                   const std::string& path, ParameterStore& store,
                                                   const TrainingCounters& current);

}  // namespace kiln
