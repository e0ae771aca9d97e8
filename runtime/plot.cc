#include "runtime/plot.h"

#include <algorithm>
#include <cmath>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace kiln {
namespace {

absl::Status WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::NotFoundError(absl::StrCat(path, ": cannot open for writing"));
  out << text;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat(path, ": write failed"));
  return absl::OkStatus();
}

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '&')
      out += "&amp;";
    else
      out += c;
  }
  return out;
}

}  // namespace

absl::Status WriteCurveCsv(const std::string& path, const std::string& x_name,
                           const std::string& y_name, const Curve& points) {
  std::string text = absl::StrCat(x_name, ",", y_name, "\n");
  for (const auto& [x, y] : points) absl::StrAppend(&text, absl::StrFormat("%g,%.9g\n", x, y));
  return WriteFile(path, text);
}

absl::Status WriteCurveSvg(const std::string& path, const std::string& title,
                           const std::string& x_label, const std::string& y_label,
                           const Curve& points) {
  return WriteCurvesSvg(path, title, x_label, y_label, {{"", points}});
}

absl::Status WriteCurvesSvg(const std::string& path, const std::string& title,
                            const std::string& x_label, const std::string& y_label,
                            const std::vector<std::pair<std::string, Curve>>& series) {
  static const char* kColors[] = {"#e4007f", "#1f77b4", "#2ca02c", "#ff7f0e",
                                  "#9467bd", "#8c564b", "#17becf", "#7f7f7f"};
  const double W = 640, H = 400, L = 70, R = 20, T = 40, B = 50;
  bool any = false;
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  for (const auto& [name, points] : series) {
    for (const auto& [x, y] : points) {
      if (!std::isfinite(y)) continue;
      if (!any) {
        x0 = x1 = x;
        y0 = y1 = y;
        any = true;
      }
      x0 = std::min(x0, x);
      x1 = std::max(x1, x);
      y0 = std::min(y0, y);
      y1 = std::max(y1, y);
    }
  }
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + 1;
  y0 = std::min(0.0, y0);
  auto px = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return H - B - (y - y0) / (y1 - y0) * (H - T - B); };
  std::string svg = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" "
      "fill=\"white\"/>\n<text x=\"%g\" y=\"24\" text-anchor=\"middle\" "
      "font-size=\"16\">%s</text>\n",
      W, H, W / 2, Escape(title));
  absl::StrAppend(
      &svg, absl::StrFormat("<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"black\"/>\n"
                            "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"black\"/>\n",
                            L, H - B, W - R, H - B, L, T, L, H - B));
  for (int i = 0; i <= 5; ++i) {
    double yv = y0 + (y1 - y0) * i / 5, xv = x0 + (x1 - x0) * i / 5;
    absl::StrAppend(
        &svg,
        absl::StrFormat("<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"#ddd\"/>"
                        "<text x=\"%g\" y=\"%g\" text-anchor=\"end\">%.3g</text>\n"
                        "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">%.4g</text>\n",
                        L, py(yv), W - R, py(yv), L - 6, py(yv) + 4, yv, px(xv), H - B + 18, xv));
  }
  absl::StrAppend(
      &svg,
      absl::StrFormat("<text x=\"%g\" y=\"%g\" text-anchor=\"middle\" font-size=\"14\">%s</text>\n"
                      "<text x=\"16\" y=\"%g\" text-anchor=\"middle\" font-size=\"14\" "
                      "transform=\"rotate(-90 16 %g)\">%s</text>\n",
                      (W + L - R) / 2, H - 12, Escape(x_label), (H - B + T) / 2, (H - B + T) / 2,
                      Escape(y_label)));
  for (size_t k = 0; k < series.size(); ++k) {
    const char* color = kColors[k % (sizeof(kColors) / sizeof(kColors[0]))];
    absl::StrAppend(&svg, "<polyline fill=\"none\" stroke=\"", color,
                    "\" stroke-width=\"2\" points=\"");
    for (const auto& [x, y] : series[k].second) {
      if (std::isfinite(y)) absl::StrAppend(&svg, absl::StrFormat("%.1f,%.1f ", px(x), py(y)));
    }
    svg += "\"/>\n";
    if (!series[k].first.empty()) {
      absl::StrAppend(
          &svg, absl::StrFormat("<rect x=\"%g\" y=\"%g\" width=\"12\" height=\"4\" fill=\"%s\"/>"
                                "<text x=\"%g\" y=\"%g\">%s</text>\n",
                                W - R - 150, T + 8 + 16 * k, color, W - R - 132, T + 14 + 16 * k,
                                Escape(series[k].first)));
    }
  }
  svg += "</svg>\n";
  return WriteFile(path, svg);
}

}  // namespace kiln
