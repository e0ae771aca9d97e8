// Loss curves a person can open: CSV (step, loss) and an SVG line chart.
//
//   KILN_RETURN_IF_ERROR(kiln::WriteCurveCsv("loss.csv", {"index", "loss"}, points));
//   KILN_RETURN_IF_ERROR(kiln::WriteCurveSvg("loss.svg", "Train loss", "iteration", "loss",
//   points));
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace kiln {

using Curve = std::vector<std::pair<double, double>>;

absl::Status WriteCurveCsv(const std::string& path, const std::string& x_name,
                           const std::string& y_name, const Curve& points);
absl::Status WriteCurveSvg(const std::string& path, const std::string& title,
                           const std::string& x_label, const std::string& y_label,
                           const Curve& points);
// Several named curves in one chart, with a legend.
absl::Status WriteCurvesSvg(const std::string& path, const std::string& title,
                            const std::string& x_label, const std::string& y_label,
                            const std::vector<std::pair<std::string, Curve>>& series);

}  // namespace kiln
