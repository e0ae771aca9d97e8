// Charts a person reads at a glance (SVG) and the numbers behind them (CSV).
//
//   KILN_RETURN_IF_ERROR(kiln::WriteCurveCsv("loss.csv", "step", "loss", points));
//   KILN_RETURN_IF_ERROR(kiln::WriteLossSvg("loss.svg", "mnist_cnn: training loss", points));
//   KILN_RETURN_IF_ERROR(kiln::WriteAccuracySvg("accuracy.svg", "mnist_cnn: accuracy per epoch",
//                                               {{"train", train}, {"test", test}}));
//
// Every chart has round tick values (1, 2 or 5 times a power of ten), labelled axes and, with more
// than one line, a legend above the plot. Points with a non-finite coordinate are skipped; a chart
// without any drawable point is still written (its axes and the words "no data").
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace kiln {

using Curve = std::vector<std::pair<double, double>>;

absl::Status WriteCurveCsv(const std::string& path, const std::string& x_name,
                           const std::string& y_name, const Curve& points);

// Training loss: points are (training step, loss). The raw points are drawn as a thin light line,
// a centered moving average of them as a bold line over it (legend "raw" / "smoothed"). The y axis
// is log10 when the losses are all positive and span more than 1.5 decades (ticks at 1, 2 and 5
// times powers of ten), linear otherwise. The x axis is labelled "training step".
absl::Status WriteLossSvg(const std::string& path, const std::string& title, const Curve& points);

// Accuracy per epoch: points are (epoch, accuracy as a fraction), one marked line per named series
// (e.g. "train", "validation", "test"). The y range is fitted to the data with a small margin, so
// accuracies between 0.95 and 0.99 fill the chart; x ticks are whole epochs.
absl::Status WriteAccuracySvg(const std::string& path, const std::string& title,
                              const std::vector<std::pair<std::string, Curve>>& series);

// General line charts on linear axes: one curve, or several named curves with a legend.
absl::Status WriteCurveSvg(const std::string& path, const std::string& title,
                           const std::string& x_label, const std::string& y_label,
                           const Curve& points);
absl::Status WriteCurvesSvg(const std::string& path, const std::string& title,
                            const std::string& x_label, const std::string& y_label,
                            const std::vector<std::pair<std::string, Curve>>& series);

// The charts' building blocks, exposed for tests.
namespace plot_internal {

// Round tick values in [lo, hi]: the multiples of the smallest step of the form {1, 2, 5} x 10^k,
// and not below min_step, that give at most max_ticks ticks.
std::vector<double> LinearTicks(double lo, double hi, int max_ticks, double min_step = 0);

// Tick values for a log10 axis over [lo, hi], 0 < lo < hi: 1, 2 and 5 times the powers of ten when
// at most max_ticks of them fall in the range, else powers of ten only (every second, fifth, ...
// power over many decades). Ranges too narrow for two such ticks get LinearTicks.
std::vector<double> LogTicks(double lo, double hi, int max_ticks);

// A tick's text: linear ticks with the decimals their step needs (step 0.5: "1.5", step 2000:
// "4000"), log ticks (step 0) in the shortest form ("0.005", "20").
std::string TickLabel(double value, double step);

// Whether WriteLossSvg draws these losses on a log10 y axis: every finite loss is positive and the
// largest is more than 10^1.5 times the smallest.
bool UseLogScale(const Curve& points);

// The smoothed line of WriteLossSvg: over the finite points (with log_y, those with y > 0), a
// centered moving average of 2h+1 points, h = max(1, round(sqrt(n) / 2)). Near the ends, where the
// window is cut, the value of a least-squares line through the window instead (no lag behind a
// trend, less noise than the raw end points). With log_y it works on log10(y). Fewer than three
// points come back unchanged.
Curve Smooth(const Curve& points, bool log_y);

struct Range {
  double lo;
  double hi;
};

// The y range of an accuracy chart for data in [lo, hi]: 5% of the span added on each side (a pad
// of 1% of the value, at least 0.005, when lo == hi).
Range FitRange(double lo, double hi);

}  // namespace plot_internal
}  // namespace kiln
