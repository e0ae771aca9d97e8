// Where a compiled step's batches come from, behind one interface the training loop calls the same
// way for both implementations:
//   - HostBatches fills the step's example and target inputs on the host for every batch (seeded
//     shuffle per epoch, random shifts, normalization to [0, 1] or raw pixels); it also feeds the
//     evaluation step (in order, the last batch padded);
//   - ResidentBatches hands a resident step (CompileOptions::resident_examples) the whole data set
//     once, as device-resident inputs, then per epoch only the permutation and per batch only its
//     start position; the step gathers its rows on the device.
//
//   KILN_ASSIGN_OR_RETURN(std::unique_ptr<kiln::BatchSource> src,
//                         kiln::MakeTrainingBatches(sig, data, seed, shuffle, shift, device));
//   src->StartEpoch(epoch);
//   for (int64_t b = 0; b < src->num_batches(); ++b) { src->Prepare(b); step->Run(...); }
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "base/tensor.h"
#include "runtime/dataset.h"
#include "runtime/device_tensors.h"
#include "runtime/executable.h"

namespace kiln {

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  int64_t batch() const { return batch_; }
  int64_t num_batches() const { return feeder_.num_batches(); }
  // Data-parallel training: this rank's slice of every global batch (BatchFeeder::set_slice).
  void set_slice(int rank, int ranks) { feeder_.set_slice(rank, ranks); }
  // The tensor the step reads for one of its data arguments (role kData or kDataset, by kind) or
  // its batch-start hyperparameter; InvalidArgument for an argument this source does not feed.
  virtual absl::StatusOr<TensorRef> Feed(const ArgSpec& a) = 0;
  // Before the epoch's first batch: the epoch's order (it depends on the seed and epoch only).
  virtual void StartEpoch(int epoch) = 0;
  // Makes batch `b` of the epoch the step's input; returns the rows that hold examples (the rest
  // of a padded last batch are zeros).
  virtual int64_t Prepare(int64_t b) = 0;

 protected:
  BatchSource(const Dataset& data, int64_t batch, uint64_t seed, bool shuffle, bool drop_last)
      : batch_(batch), feeder_(data, batch, seed, shuffle, drop_last) {}
  int64_t batch_;
  BatchFeeder feeder_;
};

class HostBatches : public BatchSource {
 public:
  // For `sig`'s kExample input (float32 [B, ...] with the data's example size: pixels normalized
  // to [0, 1] or float values as they are; or raw uint8 pixels) and kTarget input (int32 [B] for
  // class labels, float32 [B, ...] for regression targets): training batches (the last partial one
  // dropped, shuffled if `shuffle`, shifted by up to `random_shift` pixels), or evaluation
  // batches (in order, the last one padded).
  static absl::StatusOr<std::unique_ptr<HostBatches>> ForTraining(const Signature& sig,
                                                                  const Dataset& data,
                                                                  uint64_t seed, bool shuffle,
                                                                  int random_shift);
  static absl::StatusOr<std::unique_ptr<HostBatches>> ForEvaluation(const Signature& sig,
                                                                    const Dataset& data);
  absl::StatusOr<TensorRef> Feed(const ArgSpec& a) override;
  void StartEpoch(int epoch) override { feeder_.StartEpoch(epoch); }
  int64_t Prepare(int64_t b) override;
  // The class labels of the batch last prepared (also when the step reads none); null for a
  // regression data set.
  const int32_t* labels() const { return regression_ ? nullptr : labels_.data<int32_t>(); }
  // The example input (to fill one example by hand, as Trainer::Predict does).
  Tensor& example() { return example_; }

 private:
  HostBatches(const Dataset& data, int64_t batch, uint64_t seed, bool shuffle, bool drop_last)
      : BatchSource(data, batch, seed, shuffle, drop_last) {}
  static absl::StatusOr<std::unique_ptr<HostBatches>> Make(const Signature& sig,
                                                           const Dataset& data, uint64_t seed,
                                                           bool shuffle, bool drop_last);
  Tensor example_, labels_, targets_;
  bool regression_ = false;
  bool feeds_targets_ = false;  // the step reads the regression targets
};

class ResidentBatches : public BatchSource {
 public:
  // For a resident step's kDataset inputs (the whole set: uint8 pixels, int32 labels, the
  // permutation) and its batch-start hyperparameter; registers them with `device` until the
  // source is destroyed. InvalidArgument when the step was compiled for another data set.
  static absl::StatusOr<std::unique_ptr<ResidentBatches>> Make(const Signature& sig,
                                                               const Dataset& data, uint64_t seed,
                                                               bool shuffle, DeviceTensors* device);
  ~ResidentBatches() override;
  absl::StatusOr<TensorRef> Feed(const ArgSpec& a) override;
  void StartEpoch(int epoch) override;  // uploads the epoch's permutation
  int64_t Prepare(int64_t b) override;

 private:
  ResidentBatches(const Dataset& data, int64_t batch, uint64_t seed, bool shuffle)
      : BatchSource(data, batch, seed, shuffle, /*drop_last=*/true), data_(data) {}
  const Dataset& data_;
  DeviceTensors* device_ = nullptr;
  Tensor order_, start_;
  std::vector<const void*> registered_;
};

// The source a training step needs: resident when its signature takes the whole data set.
absl::StatusOr<std::unique_ptr<BatchSource>> MakeTrainingBatches(const Signature& sig,
                                                                 const Dataset& data, uint64_t seed,
                                                                 bool shuffle, int random_shift,
                                                                 DeviceTensors* device);

}  // namespace kiln
