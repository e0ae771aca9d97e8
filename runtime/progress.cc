#include "runtime/progress.h"

#include <unistd.h>

#include <cstdio>

namespace kiln {

Progress::Progress(std::string label, int64_t total, int64_t items_per_unit, bool enabled)
    : label_(std::move(label)),
      total_(total),
      per_unit_(items_per_unit),
      enabled_(enabled),
      tty_(::isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()),
      last_(start_) {}

void Progress::Update(int64_t done) {
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (tty_) {
    if (now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    Print(done, false);
  } else {
    int percent = static_cast<int>(100 * done / (total_ ? total_ : 1));
    if (percent / 25 != last_percent_ / 25 && percent < 100) {
      last_percent_ = percent;
      Print(done, false);
    }
  }
}

void Progress::Finish() {
  if (enabled_) Print(total_, true);
}

void Progress::Print(int64_t done, bool final) {
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double rate = s > 0 ? static_cast<double>(done * per_unit_) / s : 0;
  double eta = done > 0 ? s * static_cast<double>(total_ - done) / static_cast<double>(done) : 0;
  if (tty_) {
    const int width = 30;
    int filled = static_cast<int>(width * done / (total_ ? total_ : 1));
    std::fprintf(stderr, "\r%s [%.*s%*s] %lld/%lld %.0f img/s ETA %.1fs%s", label_.c_str(), filled,
                 "##############################", width - filled, "", static_cast<long long>(done),
                 static_cast<long long>(total_), rate, eta, final ? "\n" : "");
  } else {
    std::fprintf(stderr, "%s %lld/%lld batches, %.0f img/s, %s %.1fs\n", label_.c_str(),
                 static_cast<long long>(done), static_cast<long long>(total_), rate,
                 final ? "took" : "ETA", final ? s : eta);
  }
  std::fflush(stderr);
}

}  // namespace kiln
