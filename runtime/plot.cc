#include "runtime/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace kiln {
namespace plot_internal {
namespace {

// 10^e, exact for the exponents a chart uses (|e| <= 22).
double Pow10(int e) {
  double p = 1;
  for (int i = 0; i < std::abs(e); ++i) p *= 10;
  return e < 0 ? 1 / p : p;
}

// m x 10^e computed so that e.g. 5 x 10^-3 is the double nearest 0.005.
double Scaled(double m, int e) { return e < 0 ? m / Pow10(-e) : m * Pow10(e); }

}  // namespace

std::vector<double> LinearTicks(double lo, double hi, int max_ticks, double min_step) {
  if (!(lo < hi) || !std::isfinite(hi - lo)) return {};
  max_ticks = std::max(max_ticks, 2);
  const double span = hi - lo;
  int e0 = static_cast<int>(std::floor(std::log10(span / max_ticks))) - 1;
  if (min_step > 0) e0 = std::max(e0, static_cast<int>(std::floor(std::log10(min_step))));
  for (int e = e0; e <= e0 + 3; ++e) {
    for (int m : {1, 2, 5}) {
      const double step = Scaled(m, e);
      if (step < min_step) continue;
      const double first = std::ceil(lo / step - 1e-9), last = std::floor(hi / step + 1e-9);
      if (last - first + 1 > max_ticks) continue;
      std::vector<double> ticks;
      for (double i = first; i <= last; ++i) {
        double v = e < 0 ? i * m / Pow10(-e) : i * m * Pow10(e);
        ticks.push_back(v == 0 ? 0 : v);  // no -0
      }
      return ticks;
    }
  }
  return {};
}

std::vector<double> LogTicks(double lo, double hi, int max_ticks) {
  if (!(lo > 0 && lo < hi) || !std::isfinite(hi)) return {};
  const int d0 = static_cast<int>(std::floor(std::log10(lo)));
  const int d1 = static_cast<int>(std::ceil(std::log10(hi)));
  auto in_range = [&](double v) { return v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9); };
  std::vector<double> ticks;
  for (int m : {1, 2, 5}) {
    for (int d = d0; d <= d1; ++d) {
      if (in_range(Scaled(m, d))) ticks.push_back(Scaled(m, d));
    }
  }
  std::sort(ticks.begin(), ticks.end());
  if (ticks.size() >= 2 && static_cast<int>(ticks.size()) <= max_ticks) return ticks;
  for (int stride : {1, 2, 3, 5, 10, 20, 50, 100}) {
    ticks.clear();
    for (int d = d0; d <= d1; ++d) {
      if (d % stride == 0 && in_range(Scaled(1, d))) ticks.push_back(Scaled(1, d));
    }
    if (ticks.size() < 2) break;
    if (static_cast<int>(ticks.size()) <= max_ticks) return ticks;
  }
  return LinearTicks(lo, hi, max_ticks);
}

std::string TickLabel(double value, double step) {
  if (step <= 0) return absl::StrFormat("%g", value);
  const int decimals = std::max(0, -static_cast<int>(std::floor(std::log10(step) + 1e-9)));
  std::string s = absl::StrFormat("%.*f", decimals, value);
  if (s.find_first_not_of("-0.") == std::string::npos && s[0] == '-') s.erase(0, 1);  // "-0.0"
  return s;
}

bool UseLogScale(const Curve& points) {
  double lo = 0, hi = 0;
  bool any = false;
  for (const auto& [x, y] : points) {
    if (!std::isfinite(x) || !std::isfinite(y)) continue;
    if (y <= 0) return false;
    lo = any ? std::min(lo, y) : y;
    hi = any ? std::max(hi, y) : y;
    any = true;
  }
  return any && std::log10(hi / lo) > 1.5;
}

Curve Smooth(const Curve& points, bool log_y) {
  Curve kept;
  for (const auto& [x, y] : points) {
    if (std::isfinite(x) && std::isfinite(y) && (!log_y || y > 0)) kept.push_back({x, y});
  }
  const int64_t n = static_cast<int64_t>(kept.size());
  if (n < 3) return kept;
  const int64_t h = std::max<int64_t>(1, std::llround(std::sqrt(static_cast<double>(n)) / 2));
  // Prefix sums of v and of j * v, v = y or log10 y: each window's least-squares line in O(1).
  std::vector<double> sum(n + 1, 0.0), moment(n + 1, 0.0);
  for (int64_t j = 0; j < n; ++j) {
    const double v = log_y ? std::log10(kept[j].second) : kept[j].second;
    sum[j + 1] = sum[j] + v;
    moment[j + 1] = moment[j] + static_cast<double>(j) * v;
  }
  // Sums of d and d^2 for d in [a, b].
  auto s1 = [](double a, double b) { return (a + b) * (b - a + 1) / 2; };
  auto s2 = [](double a, double b) {
    auto upto = [](double k) { return k * (k + 1) * (2 * k + 1) / 6; };  // 1^2 + ... + k^2
    return a >= 0 ? upto(b) - upto(a - 1) : upto(-a) + upto(b);          // here a <= 0 <= b
  };
  Curve out(n);
  for (int64_t i = 0; i < n; ++i) {
    // The window [i - h, i + h] cut at the ends; a line v = c0 + c1 (j - i) fitted to it by least
    // squares gives c0 (for a whole window: its mean; near the ends: no lag behind a trend).
    const int64_t a = std::max<int64_t>(0, i - h), b = std::min(n - 1, i + h);
    const double da = static_cast<double>(a - i), db = static_cast<double>(b - i);
    const double c = static_cast<double>(b - a + 1), d1 = s1(da, db), d2 = s2(da, db);
    const double t0 = sum[b + 1] - sum[a];
    const double t1 = moment[b + 1] - moment[a] - static_cast<double>(i) * t0;
    const double v = (d2 * t0 - d1 * t1) / (c * d2 - d1 * d1);
    out[i] = {kept[i].first, log_y ? std::pow(10.0, v) : v};
  }
  return out;
}

Range FitRange(double lo, double hi) {
  if (hi < lo) std::swap(lo, hi);
  const double pad = hi > lo ? 0.05 * (hi - lo) : std::max(0.005, 0.01 * std::abs(lo));
  return {lo - pad, hi + pad};
}

}  // namespace plot_internal

namespace {

using plot_internal::Range;

constexpr double kWidth = 720, kHeight = 440;
constexpr double kFont = 12, kTitleFont = 16, kLabelFont = 14;
constexpr double kGlyph = 0.58, kDigit = 0.64;  // glyph widths in font sizes
const char* const kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                "#9467bd", "#8c564b", "#e377c2", "#17becf"};

struct Line {
  std::string name;  // legend entry (none when empty)
  Curve points;      // drawable points only
  std::string color;
  double width = 2;
  double opacity = 1;
  bool markers = false;
};

enum class YRange { kFromZeroWhenNear, kFitted, kLog };

struct Chart {
  std::string title, x_label, y_label;
  std::vector<Line> lines;
  YRange y_range = YRange::kFromZeroWhenNear;
  bool integer_x = false;  // epochs: whole-number ticks, a margin so end markers show
};

absl::Status WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::NotFoundError(absl::StrCat(path, ": cannot open for writing"));
  out << text;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat(path, ": write failed"));
  return absl::OkStatus();
}

// Text content and attribute values: markup escaped, characters XML 1.0 forbids dropped.
std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') {
      out += "&lt;";
    } else if (c == '>') {
      out += "&gt;";
    } else if (c == '&') {
      out += "&amp;";
    } else if (c == '"') {
      out += "&quot;";
    } else if (static_cast<unsigned char>(c) >= 0x20 || c == '\t' || c == '\n' || c == '\r') {
      out += c;
    }
  }
  return out;
}

// A coordinate or length in the SVG: always a finite number.
std::string Num(double v) {
  if (!std::isfinite(v)) v = 0;
  std::string s = absl::StrFormat("%.2f", v);
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s == "-0" ? "0" : s;
}

// Roughly the width of `s` in a sans-serif font: digits are wider than the average letter.
double TextWidth(const std::string& s, double font) {
  double w = 0;
  for (char c : s) w += (c >= '0' && c <= '9' ? kDigit : kGlyph) * font;
  return w;
}

// A font size at most `font` that fits `s` into `room` pixels.
double FitFont(const std::string& s, double font, double room) {
  const double w = TextWidth(s, font);
  return w > room ? std::max(8.0, font * room / w) : font;
}

// One axis: the data values at its ends, its scale and its labelled ticks.
struct Axis {
  Range range{0, 1};
  bool log = false;
  std::vector<double> ticks;
  std::vector<std::string> labels;

  double Fraction(double v) const {
    if (log) {
      return (std::log10(v) - std::log10(range.lo)) / (std::log10(range.hi) - std::log10(range.lo));
    }
    return (v - range.lo) / (range.hi - range.lo);
  }
  double WidestLabel() const {
    double w = 0;
    for (const std::string& l : labels) w = std::max(w, TextWidth(l, kFont));
    return w;
  }
};

// Labels for linear ticks, with the decimals their step needs (a lone tick: its shortest form).
std::vector<std::string> LinearLabels(const std::vector<double>& ticks) {
  const double step = ticks.size() >= 2 ? ticks[1] - ticks[0] : 0;
  std::vector<std::string> labels;
  for (double t : ticks) labels.push_back(plot_internal::TickLabel(t, step));
  return labels;
}

// A linear range over data in [lo, hi] that starts (or ends) at zero when the data come closer to
// zero than their own span, with `pad` of the span added at the other end(s).
Range ZeroAnchoredRange(double lo, double hi, double pad) {
  if (hi == lo) return plot_internal::FitRange(lo, hi);
  const double span = hi - lo;
  Range r{lo - pad * span, hi + pad * span};
  if (lo >= 0 && lo <= span) r.lo = 0;
  if (hi <= 0 && -hi <= span) r.hi = 0;
  return r;
}

Axis MakeXAxis(double lo, double hi, bool integer_x, double room) {
  Axis a;
  if (integer_x) {
    const double pad = hi > lo ? std::max(0.25, 0.04 * (hi - lo)) : 0.5;
    a.range = {lo - pad, hi + pad};
  } else {
    a.range = hi > lo ? ZeroAnchoredRange(lo, hi, 0) : Range{lo - 0.5, hi + 0.5};
  }
  auto ticks = [&](int max_ticks) {
    return plot_internal::LinearTicks(a.range.lo, a.range.hi, max_ticks, integer_x ? 1 : 0);
  };
  // An end close to a round value is moved out to it, so that value gets its tick (e.g. a run
  // ending at step 9990 gets an axis to 10000).
  if (!integer_x) {
    const std::vector<double> t = ticks(8);
    if (t.size() >= 2) {
      const double step = t[1] - t[0], span = a.range.hi - a.range.lo;
      const double up = std::ceil(a.range.hi / step - 1e-9) * step;
      const double down = std::floor(a.range.lo / step + 1e-9) * step;
      if (up - a.range.hi <= 0.05 * span) a.range.hi = up;
      if (a.range.lo - down <= 0.05 * span) a.range.lo = down;
    }
  }
  // As many ticks as fit with room between their labels.
  for (int max_ticks = 10; max_ticks >= 2; --max_ticks) {
    a.ticks = ticks(max_ticks);
    a.labels = LinearLabels(a.ticks);
    if ((a.WidestLabel() + 16) * static_cast<double>(a.ticks.size()) <= room) break;
  }
  return a;
}

Axis MakeYAxis(double lo, double hi, YRange mode, double room) {
  Axis a;
  if (mode == YRange::kLog) {
    const double l0 = std::log10(lo), l1 = std::log10(hi), pad = 0.04 * (l1 - l0);
    a.log = true;
    a.range = {std::pow(10.0, l0 - pad), std::pow(10.0, l1 + pad)};
    a.ticks = plot_internal::LogTicks(a.range.lo, a.range.hi, static_cast<int>(room / 20));
    for (double t : a.ticks) a.labels.push_back(plot_internal::TickLabel(t, 0));
    return a;
  }
  a.range =
      mode == YRange::kFitted ? plot_internal::FitRange(lo, hi) : ZeroAnchoredRange(lo, hi, 0.05);
  a.ticks = plot_internal::LinearTicks(a.range.lo, a.range.hi, static_cast<int>(room / 45));
  a.labels = LinearLabels(a.ticks);
  return a;
}

std::string Render(const Chart& chart) {
  // Data extent over every drawable point.
  bool any = false;
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  for (const Line& line : chart.lines) {
    for (const auto& [x, y] : line.points) {
      x0 = any ? std::min(x0, x) : x;
      x1 = any ? std::max(x1, x) : x;
      y0 = any ? std::min(y0, y) : y;
      y1 = any ? std::max(y1, y) : y;
      any = true;
    }
  }
  const YRange y_mode = any ? chart.y_range : YRange::kFromZeroWhenNear;

  // Legend rows above the plot, right-aligned.
  struct Entry {
    const Line* line;
    double width;
  };
  std::vector<std::vector<Entry>> rows;
  const double legend_room = kWidth - 40;
  for (const Line& line : chart.lines) {
    if (line.name.empty()) continue;
    const double w = 28 + TextWidth(line.name, kFont) + 18;
    double used = 0;
    if (!rows.empty()) {
      for (const Entry& e : rows.back()) used += e.width;
    }
    if (rows.empty() || used + w > legend_room) rows.emplace_back();
    rows.back().push_back({&line, w});
  }

  const double top = 46 + 18 * static_cast<double>(rows.size());
  const double bottom = kHeight - 56;
  Axis y = MakeYAxis(y0, y1, y_mode, bottom - top);
  const double left = 40 + y.WidestLabel() + 8, right = kWidth - 28;
  Axis x = MakeXAxis(x0, x1, chart.integer_x, right - left);
  auto px = [&](double v) { return left + x.Fraction(v) * (right - left); };
  auto py = [&](double v) { return bottom - y.Fraction(v) * (bottom - top); };

  std::string svg = absl::StrCat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"", Num(kWidth), "\" height=\"",
      Num(kHeight), "\" viewBox=\"0 0 ", Num(kWidth), " ", Num(kHeight),
      "\" font-family=\"DejaVu Sans, Arial, Helvetica, sans-serif\" font-size=\"", Num(kFont),
      "\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
  absl::StrAppend(&svg, "<text x=\"", Num(kWidth / 2), "\" y=\"26\" text-anchor=\"middle\" ",
                  "font-weight=\"bold\" font-size=\"",
                  Num(FitFont(chart.title, kTitleFont, kWidth - 20)), "\">", Escape(chart.title),
                  "</text>\n");

  // Grid lines and tick labels.
  for (size_t i = 0; i < y.ticks.size(); ++i) {
    const std::string v = Num(py(y.ticks[i]));
    absl::StrAppend(&svg, "<line x1=\"", Num(left), "\" y1=\"", v, "\" x2=\"", Num(right),
                    "\" y2=\"", v, "\" stroke=\"#e3e3e3\"/><line x1=\"", Num(left - 5), "\" y1=\"",
                    v, "\" x2=\"", Num(left), "\" y2=\"", v, "\" stroke=\"#333\"/><text x=\"",
                    Num(left - 8), "\" y=\"", Num(py(y.ticks[i]) + 4), "\" text-anchor=\"end\">",
                    Escape(y.labels[i]), "</text>\n");
  }
  for (size_t i = 0; i < x.ticks.size(); ++i) {
    const std::string v = Num(px(x.ticks[i]));
    absl::StrAppend(&svg, "<line x1=\"", v, "\" y1=\"", Num(top), "\" x2=\"", v, "\" y2=\"",
                    Num(bottom), "\" stroke=\"#e3e3e3\"/><line x1=\"", v, "\" y1=\"", Num(bottom),
                    "\" x2=\"", v, "\" y2=\"", Num(bottom + 5), "\" stroke=\"#333\"/><text x=\"", v,
                    "\" y=\"", Num(bottom + 20), "\" text-anchor=\"middle\">", Escape(x.labels[i]),
                    "</text>\n");
  }
  absl::StrAppend(&svg, "<rect x=\"", Num(left), "\" y=\"", Num(top), "\" width=\"",
                  Num(right - left), "\" height=\"", Num(bottom - top),
                  "\" fill=\"none\" stroke=\"#333\"/>\n");

  // Axis titles.
  const double mid_y = (top + bottom) / 2;
  absl::StrAppend(&svg, "<text x=\"", Num((left + right) / 2), "\" y=\"", Num(kHeight - 14),
                  "\" text-anchor=\"middle\" font-size=\"",
                  Num(FitFont(chart.x_label, kLabelFont, right - left)), "\">",
                  Escape(chart.x_label), "</text>\n");
  absl::StrAppend(&svg, "<text x=\"20\" y=\"", Num(mid_y), "\" text-anchor=\"middle\" font-size=\"",
                  Num(FitFont(chart.y_label, kLabelFont, bottom - top)),
                  "\" transform=\"rotate(-90 20 ", Num(mid_y), ")\">", Escape(chart.y_label),
                  "</text>\n");

  // The data.
  for (const Line& line : chart.lines) {
    if (line.points.empty()) continue;
    absl::StrAppend(&svg, "<polyline fill=\"none\" stroke=\"", line.color, "\" stroke-width=\"",
                    Num(line.width), "\"");
    if (line.opacity < 1) absl::StrAppend(&svg, " stroke-opacity=\"", Num(line.opacity), "\"");
    absl::StrAppend(&svg, " stroke-linejoin=\"round\" points=\"");
    for (const auto& [vx, vy] : line.points)
      absl::StrAppend(&svg, Num(px(vx)), ",", Num(py(vy)), " ");
    if (svg.back() == ' ') svg.pop_back();
    svg += "\"/>\n";
    if (line.markers) {
      for (const auto& [vx, vy] : line.points) {
        absl::StrAppend(&svg, "<circle cx=\"", Num(px(vx)), "\" cy=\"", Num(py(vy)),
                        "\" r=\"3.5\" fill=\"", line.color, "\" stroke=\"white\"/>\n");
      }
    }
  }
  if (!any) {
    absl::StrAppend(&svg, "<text x=\"", Num((left + right) / 2), "\" y=\"", Num(mid_y),
                    "\" text-anchor=\"middle\" font-size=\"", Num(kLabelFont),
                    "\" fill=\"#777\">no data</text>\n");
  }

  // Legend.
  for (size_t r = 0; r < rows.size(); ++r) {
    double w = 0;
    for (const Entry& e : rows[r]) w += e.width;
    double cx = kWidth - 20 - w;
    const double cy = 44 + 18 * static_cast<double>(r);
    for (const Entry& e : rows[r]) {
      const Line& line = *e.line;
      absl::StrAppend(&svg, "<line x1=\"", Num(cx), "\" y1=\"", Num(cy), "\" x2=\"", Num(cx + 22),
                      "\" y2=\"", Num(cy), "\" stroke=\"", line.color, "\" stroke-width=\"",
                      Num(std::max(line.width, 1.5)), "\"");
      if (line.opacity < 1) absl::StrAppend(&svg, " stroke-opacity=\"", Num(line.opacity), "\"");
      svg += "/>";
      if (line.markers) {
        absl::StrAppend(&svg, "<circle cx=\"", Num(cx + 11), "\" cy=\"", Num(cy),
                        "\" r=\"3.5\" fill=\"", line.color, "\" stroke=\"white\"/>");
      }
      absl::StrAppend(&svg, "<text x=\"", Num(cx + 28), "\" y=\"", Num(cy + 4), "\">",
                      Escape(line.name), "</text>\n");
      cx += e.width;
    }
  }
  svg += "</svg>\n";
  return svg;
}

// The drawable points of a curve: both coordinates finite (and y > 0 on a log axis).
Curve Drawable(const Curve& points, bool log_y) {
  Curve out;
  for (const auto& [x, y] : points) {
    if (std::isfinite(x) && std::isfinite(y) && (!log_y || y > 0)) out.push_back({x, y});
  }
  return out;
}

std::vector<Line> NamedLines(const std::vector<std::pair<std::string, Curve>>& series,
                             bool markers) {
  std::vector<Line> lines;
  for (size_t k = 0; k < series.size(); ++k) {
    Line line;
    line.name = series[k].first;
    line.points = Drawable(series[k].second, false);
    line.color = kPalette[k % (sizeof(kPalette) / sizeof(kPalette[0]))];
    line.markers = markers || line.points.size() == 1;
    lines.push_back(line);
  }
  return lines;
}

}  // namespace

absl::Status WriteCurveCsv(const std::string& path, const std::string& x_name,
                           const std::string& y_name, const Curve& points) {
  std::string text = absl::StrCat(x_name, ",", y_name, "\n");
  for (const auto& [x, y] : points) absl::StrAppend(&text, absl::StrFormat("%g,%.9g\n", x, y));
  return WriteFile(path, text);
}

absl::Status WriteLossSvg(const std::string& path, const std::string& title, const Curve& points) {
  const bool log_y = plot_internal::UseLogScale(points);
  Chart chart;
  chart.title = title;
  chart.x_label = "training step";
  chart.y_label = log_y ? "loss (log scale)" : "loss";
  chart.y_range = log_y ? YRange::kLog : YRange::kFromZeroWhenNear;
  Line raw;
  raw.points = Drawable(points, log_y);
  raw.color = kPalette[0];
  raw.width = 1.25;
  raw.opacity = 0.35;
  raw.markers = raw.points.size() < 3;
  if (raw.points.size() >= 3) {
    Line smoothed;
    smoothed.name = "smoothed";
    smoothed.points = plot_internal::Smooth(raw.points, log_y);
    smoothed.color = kPalette[0];
    smoothed.width = 2.5;
    raw.name = "raw";
    chart.lines = {raw, smoothed};
  } else {
    raw.opacity = 1;
    chart.lines = {raw};
  }
  return WriteFile(path, Render(chart));
}

absl::Status WriteAccuracySvg(const std::string& path, const std::string& title,
                              const std::vector<std::pair<std::string, Curve>>& series) {
  Chart chart;
  chart.title = title;
  chart.x_label = "epoch";
  chart.y_label = "accuracy";
  chart.y_range = YRange::kFitted;
  chart.integer_x = true;
  chart.lines = NamedLines(series, /*markers=*/true);
  return WriteFile(path, Render(chart));
}

absl::Status WriteCurveSvg(const std::string& path, const std::string& title,
                           const std::string& x_label, const std::string& y_label,
                           const Curve& points) {
  return WriteCurvesSvg(path, title, x_label, y_label, {{"", points}});
}

absl::Status WriteCurvesSvg(const std::string& path, const std::string& title,
                            const std::string& x_label, const std::string& y_label,
                            const std::vector<std::pair<std::string, Curve>>& series) {
  Chart chart;
  chart.title = title;
  chart.x_label = x_label;
  chart.y_label = y_label;
  chart.lines = NamedLines(series, /*markers=*/false);
  return WriteFile(path, Render(chart));
}

}  // namespace kiln
