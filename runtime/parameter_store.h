// The model's state between steps: parameters, optimizer state and buffers (batch-norm running
// statistics, a resident step's running sums), each held twice and swapped after every training
// step, so a step reads one half and writes the other and never reads what it overwrites. When
// the steps run on a GPU (or emulate one in tests) every buffer also has a device copy.
//
//   kiln::ParameterStore store;
//   KILN_RETURN_IF_ERROR(store.Initialize(train->signature(), /*seed=*/1));
//   const kiln::Tensor& w = store.Current(*store.Find("fc.weight"));
//   ... a training step writes the other half ...
//   store.Swap();
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "base/tensor.h"
#include "runtime/device_tensors.h"
#include "runtime/executable.h"

namespace kiln {

class ParameterStore {
 public:
  struct Slot {
    ArgSpec spec;  // the step input that reads it (role kParam or kState)
    Tensor buf[2];
  };

  // One slot per kParam and kState input of `sig`: parameters by their initializers, seeded by
  // (seed, name), state by theirs (zeros for optimizer state, both halves equal). Drops the
  // device copies of a previous initialization.
  absl::Status Initialize(const Signature& sig, uint64_t seed);
  // InvalidArgument naming the first kParam or kState input of `sig` (the signature of `step`)
  // that has no slot of its type and shape.
  absl::Status CheckReads(const Signature& sig, const char* step) const;

  Slot* Find(const std::string& name);
  const Slot* Find(const std::string& name) const;
  std::vector<Slot>& slots() { return slots_; }
  const std::vector<Slot>& slots() const { return slots_; }

  // The half that holds the current values; a training step reads it and writes the other.
  int parity() const { return parity_; }
  void Swap() { parity_ = 1 - parity_; }
  Tensor& Current(Slot& s) { return s.buf[parity_]; }
  const Tensor& Current(const Slot& s) const { return s.buf[parity_]; }

  // Gives every buffer a device copy (kEmulated: a second host copy, for tests). Steps that get
  // device() then read and write the device copies.
  void EnableDevice(DeviceTensors::Mode mode);
  DeviceTensors* device() const { return device_.get(); }
  // The current halves' host copies brought up to date (a no-op without a device).
  absl::Status ToHost() const;
  absl::Status ToHost(const Slot& s) const;
  // Every host copy changed (initialization, a checkpoint loaded): the next step uploads them.
  void HostWrote();

 private:
  std::vector<Slot> slots_;
  int parity_ = 0;
  std::unique_ptr<DeviceTensors> device_;
};

}  // namespace kiln
