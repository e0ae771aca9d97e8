// A progress bar with images/s and ETA on a terminal; plain, occasional lines when not a TTY.
//
//   kiln::Progress p("epoch 1/10", total_batches, batch_size);
//   for (...) p.Update(done_batches);
//   p.Finish();
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace kiln {

class Progress {
 public:
  Progress(std::string label, int64_t total, int64_t items_per_unit, bool enabled);
  void Update(int64_t done);
  void Finish();

 private:
  void Print(int64_t done, bool final);
  std::string label_;
  int64_t total_, per_unit_;
  bool enabled_, tty_;
  std::chrono::steady_clock::time_point start_, last_;
  int last_percent_ = -1;
};

}  // namespace kiln
