// Batches from a Dataset: a seeded shuffle per epoch, normalization to [0, 1] (pixel / 255, as the
// tutorial does), and evaluation batches that cover every example (the last partial batch too).
//
//   kiln::BatchFeeder feeder(train, /*batch=*/16, /*seed=*/1);
//   feeder.StartEpoch(epoch);                        // permutation depends on (seed, epoch) only
//   for (int64_t b = 0; b < feeder.num_batches(); ++b) feeder.Fill(b, images, labels);
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/idx.h"

namespace kiln {

// Deterministic 64-bit generator (splitmix64): the same sequence on every platform and library.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next();
  double Uniform();  // [0, 1)
  double Normal();   // standard normal (Box-Muller)
 private:
  uint64_t state_;
};

class BatchFeeder {
 public:
  // shuffle=false keeps file order. drop_last=true (training) skips a final partial batch;
  // drop_last=false (evaluation) pads it, and Fill reports how many rows are real.
  BatchFeeder(const Dataset& data, int64_t batch_size, uint64_t seed, bool shuffle = true,
              bool drop_last = true);
  void StartEpoch(int epoch);
  // Training augmentation: shift each 2-D example by up to `pixels` in x and y (zero fill), the
  // offsets a hash of (seed, epoch, example index), so a resumed run sees the same images.
  void set_random_shift(int pixels) { shift_ = pixels; }
  // Data-parallel training: rank `rank` of `ranks` takes positions [rank * B, (rank + 1) * B) of
  // each global batch of ranks * B consecutive positions of the epoch's order (B = batch_size);
  // num_batches() then counts global batches, the same on every rank.
  void set_slice(int rank, int ranks) {
    rank_ = rank;
    ranks_ = ranks;
  }
  int64_t num_batches() const;
  int64_t batch_size() const { return batch_; }
  // The position in the epoch's order of this rank's first row of batch `b`.
  int64_t FirstPosition(int64_t b) const { return (b * ranks_ + rank_) * batch_; }
  // Writes batch `b` as floats [batch, example_size] (uint8 pixels normalized to [0, 1], float
  // values as they are) and, when `labels` is not null, the class labels [batch]. Rows past the
  // end of the data are zero. Returns the number of real rows.
  int64_t Fill(int64_t b, float* examples, int32_t* labels) const;
  // The same batch as raw pixels (0..255), for steps that normalize inside the compiled pipeline
  // (uint8 examples only).
  int64_t Fill(int64_t b, uint8_t* examples, int32_t* labels) const;
  // Starts moving batch `b`'s examples and labels into the cache (software prefetch), so that
  // Fill(b) copies from cache instead of waiting on memory for each randomly placed example.
  // Fill(b) of a shuffled feeder calls it for batch b + 1, which then loads while the step runs
  // (in file order, evaluation's sequential reads need no help). Out-of-range b: no-op.
  void Prefetch(int64_t b) const;
  // Batch `b`'s regression targets [batch, target_size] (padding rows zero).
  void FillTargets(int64_t b, float* targets) const;
  // This epoch's order of the examples (the batches are consecutive runs of it).
  const std::vector<int64_t>& order() const { return order_; }
  // The dataset index of row `row` of batch `b` (for reporting), or -1 for padding.
  int64_t IndexOf(int64_t b, int64_t row) const;

 private:
  template <typename T>
  int64_t FillT(int64_t b, T* examples, int32_t* labels) const;
  template <typename T, typename S>
  void CopyExample(const S* src, int64_t idx, T* dst) const;
  const Dataset& data_;
  int64_t batch_;
  uint64_t seed_;
  bool shuffle_, drop_last_;
  std::vector<int64_t> order_;
  int epoch_ = 0;
  int shift_ = 0;
  int rank_ = 0, ranks_ = 1;
};

}  // namespace kiln
