#include "runtime/plot.h"

#include <cctype>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/runtime/test_files.h"

namespace kiln {
namespace {

using plot_internal::FitRange;
using plot_internal::LinearTicks;
using plot_internal::LogTicks;
using plot_internal::Smooth;
using plot_internal::TickLabel;
using plot_internal::UseLogScale;

// Checks that `xml` is one well-formed element: tags nest and close, attribute values are quoted,
// '&' only starts an entity. Returns "" or what is wrong.
std::string XmlProblem(const std::string& xml) {
  std::vector<std::string> open;
  int roots = 0;
  size_t i = 0;
  auto entity_ok = [&](size_t at) {
    for (const char* e : {"&lt;", "&gt;", "&amp;", "&quot;", "&apos;"}) {
      if (xml.compare(at, std::string(e).size(), e) == 0) return true;
    }
    return false;
  };
  while (i < xml.size()) {
    if (xml[i] != '<') {
      if (xml[i] == '&' && !entity_ok(i)) return "bare & in text at " + std::to_string(i);
      if (open.empty() && !std::isspace(static_cast<unsigned char>(xml[i]))) {
        return "text outside the root at " + std::to_string(i);
      }
      ++i;
      continue;
    }
    const bool closing = xml[i + 1] == '/';
    size_t j = i + (closing ? 2 : 1);
    size_t name_start = j;
    while (j < xml.size() && (std::isalnum(static_cast<unsigned char>(xml[j])) || xml[j] == '-')) {
      ++j;
    }
    const std::string name = xml.substr(name_start, j - name_start);
    if (name.empty()) return "tag without a name at " + std::to_string(i);
    if (closing) {
      if (xml[j] != '>') return "bad closing tag " + name;
      if (open.empty() || open.back() != name) return "mismatched </" + name + ">";
      open.pop_back();
      i = j + 1;
      continue;
    }
    // Attributes: name="value".
    while (true) {
      while (j < xml.size() && std::isspace(static_cast<unsigned char>(xml[j]))) ++j;
      if (j >= xml.size()) return "unterminated tag " + name;
      if (xml[j] == '>' || xml.compare(j, 2, "/>") == 0) break;
      size_t a = j;
      while (j < xml.size() &&
             (std::isalnum(static_cast<unsigned char>(xml[j])) || xml[j] == '-' || xml[j] == ':')) {
        ++j;
      }
      if (a == j || xml.compare(j, 2, "=\"") != 0) return "bad attribute in " + name;
      j += 2;
      while (j < xml.size() && xml[j] != '"') {
        if (xml[j] == '<') return "'<' in an attribute of " + name;
        if (xml[j] == '&' && !entity_ok(j)) return "bare & in an attribute of " + name;
        ++j;
      }
      ++j;
    }
    if (open.empty()) ++roots;
    if (xml[j] == '>') {
      open.push_back(name);
      i = j + 1;
    } else {
      i = j + 2;
    }
  }
  if (!open.empty()) return "unclosed <" + open.back() + ">";
  if (roots != 1) return "expected one root element, got " + std::to_string(roots);
  return "";
}

size_t Count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

// The numbers in every points="..." list, in order.
std::vector<std::vector<double>> PolylineYs(const std::string& svg) {
  std::vector<std::vector<double>> out;
  for (size_t at = svg.find("points=\""); at != std::string::npos;
       at = svg.find("points=\"", at + 1)) {
    const size_t end = svg.find('"', at + 8);
    std::string list = svg.substr(at + 8, end - at - 8);
    std::vector<double> ys;
    size_t p = 0;
    while (p < list.size()) {
      const size_t comma = list.find(',', p);
      size_t space = list.find(' ', comma);
      if (space == std::string::npos) space = list.size();
      ys.push_back(std::stod(list.substr(comma + 1, space - comma - 1)));
      p = space + 1;
    }
    out.push_back(ys);
  }
  return out;
}

// A tick label as the SVG writes it.
bool HasLabel(const std::string& svg, const std::string& label) {
  return svg.find(">" + label + "</text>") != std::string::npos;
}

void ExpectWellFormedNumbers(const std::string& svg) {
  EXPECT_EQ(XmlProblem(svg), "");
  for (const char* bad : {"nan", "NaN", "inf", "Inf"}) EXPECT_EQ(svg.find(bad), std::string::npos);
}

// A tutorial-like loss curve: logged every 1000 batches over 37,500 steps, from about 2.0 down to
// about 0.3, with noise.
Curve TutorialLoss() {
  Curve c;
  uint32_t seed = 7;
  for (int step = 0; step <= 37500; step += 1000) {
    seed = seed * 1664525u + 1013904223u;
    const double noise = (static_cast<double>(seed >> 8) / (1 << 24) - 0.5) * 0.25;
    c.push_back({static_cast<double>(step), 0.3 + 1.7 * std::exp(-step / 6000.0) + noise});
  }
  return c;
}

TEST(PlotTest, LinearTicksAreRoundValues) {
  EXPECT_EQ(LinearTicks(0, 37500, 10),
            (std::vector<double>{0, 5000, 10000, 15000, 20000, 25000, 30000, 35000}));
  EXPECT_EQ(LinearTicks(0, 37500, 6), (std::vector<double>{0, 10000, 20000, 30000}));
  EXPECT_EQ(LinearTicks(0, 10000, 6), (std::vector<double>{0, 2000, 4000, 6000, 8000, 10000}));
  EXPECT_EQ(LinearTicks(0.948, 0.992, 7), (std::vector<double>{0.95, 0.96, 0.97, 0.98, 0.99}));
  EXPECT_EQ(LinearTicks(0, 2.1, 8), (std::vector<double>{0, 0.5, 1, 1.5, 2}));
  EXPECT_EQ(LinearTicks(-3, 3, 7), (std::vector<double>{-3, -2, -1, 0, 1, 2, 3}));
  // Whole epochs only.
  EXPECT_EQ(LinearTicks(0.75, 5.25, 10, 1), (std::vector<double>{1, 2, 3, 4, 5}));
  EXPECT_EQ(LinearTicks(0.5, 1.5, 10, 1), (std::vector<double>{1}));
  EXPECT_EQ(LinearTicks(0, 2e-3, 10, 1), (std::vector<double>{0}));
  EXPECT_EQ(LinearTicks(0, 30, 4, 1), (std::vector<double>{0, 10, 20, 30}));
  EXPECT_TRUE(LinearTicks(1, 1, 5).empty());
  EXPECT_TRUE(LinearTicks(0, std::numeric_limits<double>::infinity(), 5).empty());
}

TEST(PlotTest, LogTicksArePowersOfTenAndTwoAndFiveTimesThem) {
  EXPECT_EQ(LogTicks(0.004, 3, 16),
            (std::vector<double>{0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2}));
  // Too many for 1-2-5: powers of ten, then every second, third, ... power.
  EXPECT_EQ(LogTicks(1e-6, 10, 8), (std::vector<double>{1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.1, 1, 10}));
  EXPECT_EQ(LogTicks(1e-12, 1, 5), (std::vector<double>{1e-12, 1e-9, 1e-6, 1e-3, 1}));
  // Narrower than two such ticks: round linear ticks.
  EXPECT_EQ(LogTicks(2.1, 4.9, 8), (std::vector<double>{2.5, 3, 3.5, 4, 4.5}));
  EXPECT_TRUE(LogTicks(0, 1, 5).empty());
}

TEST(PlotTest, TickLabelsUseTheDecimalsOfTheirStep) {
  EXPECT_EQ(TickLabel(4000, 2000), "4000");
  EXPECT_EQ(TickLabel(1.5, 0.5), "1.5");
  EXPECT_EQ(TickLabel(1, 0.5), "1.0");
  EXPECT_EQ(TickLabel(0.95, 0.01), "0.95");
  EXPECT_EQ(TickLabel(0.955, 0.005), "0.955");
  EXPECT_EQ(TickLabel(-1e-17, 0.5), "0.0");
  EXPECT_EQ(TickLabel(0.005, 0), "0.005");
  EXPECT_EQ(TickLabel(20, 0), "20");
}

TEST(PlotTest, LogScaleOnlyForPositiveLossesOverMoreThanOneAndAHalfDecades) {
  EXPECT_FALSE(UseLogScale(TutorialLoss()));  // 2.0 to 0.3: under a decade
  EXPECT_TRUE(UseLogScale({{0, 2.3}, {1, 0.5}, {2, 0.005}}));
  EXPECT_FALSE(UseLogScale({{0, 2.3}, {1, 0.1}}));              // 1.36 decades
  EXPECT_TRUE(UseLogScale({{0, 2.3}, {1, 0.05}}));              // 1.66 decades
  EXPECT_FALSE(UseLogScale({{0, 2.3}, {1, 0.0}, {2, 0.005}}));  // a zero cannot be drawn
  EXPECT_FALSE(UseLogScale({{0, 2.3}, {1, -1}, {2, 0.005}}));
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_TRUE(UseLogScale({{0, 2.3}, {1, nan}, {2, 0.005}}));  // non-finite points ignored
  EXPECT_FALSE(UseLogScale({}));
}

TEST(PlotTest, SmoothingIsACenteredMovingAverage) {
  // Constant stays constant, and a straight line stays straight (a centered window).
  Curve flat, line, zigzag;
  for (int i = 0; i < 100; ++i) {
    flat.push_back({1.0 * i, 0.5});
    line.push_back({1.0 * i, 3.0 - 0.02 * i});
    zigzag.push_back({1.0 * i, i % 2 ? 1.1 : 0.9});
  }
  for (const auto& [x, y] : Smooth(flat, false)) EXPECT_DOUBLE_EQ(y, 0.5);
  Curve s = Smooth(line, false);
  ASSERT_EQ(s.size(), line.size());
  for (size_t i = 0; i < s.size(); ++i) {
    EXPECT_EQ(s[i].first, line[i].first);
    EXPECT_NEAR(s[i].second, line[i].second, 1e-12);
  }
  // 100 points: half window 5, 11 points; noise of +-0.1 becomes +-0.1/11 in the middle.
  s = Smooth(zigzag, false);
  for (size_t i = 5; i + 5 < s.size(); ++i) EXPECT_NEAR(s[i].second, 1.0, 0.1 / 11 + 1e-12);
  // Near the ends (cut windows): less noise than the raw points, and (above) no lag on a trend.
  for (size_t i : {size_t{0}, size_t{1}, s.size() - 2, s.size() - 1}) {
    EXPECT_LT(std::abs(s[i].second - 1.0), 0.05) << i;
  }
  // On a log axis: the geometric mean. Three points: half window 1.
  s = Smooth({{0, 1}, {1, 100}, {2, 1}}, true);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_NEAR(s[1].second, std::pow(10.0, 2.0 / 3), 1e-12);
  // Non-finite points (and, on a log axis, non-positive ones) are left out.
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_EQ(Smooth({{0, 1}, {1, inf}, {2, 3}, {3, -1}, {4, 5}}, true).size(), 3u);
  EXPECT_EQ(Smooth({{0, 1}, {1, 2}}, false), (Curve{{0, 1}, {1, 2}}));
}

TEST(PlotTest, AccuracyRangeIsFittedToTheData) {
  plot_internal::Range r = FitRange(0.95, 0.99);
  EXPECT_NEAR(r.lo, 0.948, 1e-12);
  EXPECT_NEAR(r.hi, 0.992, 1e-12);
  r = FitRange(0.97, 0.97);
  EXPECT_LT(r.lo, 0.97);
  EXPECT_GT(r.hi, 0.97);
  EXPECT_LT(r.hi - r.lo, 0.05);
}

TEST(PlotTest, WritesCsvAndSvg) {
  Curve c = {{0, 24.7}, {1, 3.6}, {2, 4.7}};
  std::string base = ::testing::TempDir() + "/loss";
  ASSERT_TRUE(WriteCurveCsv(base + ".csv", "index", "loss", c).ok());
  EXPECT_EQ(testing::ReadAll(base + ".csv"), "index,loss\n0,24.7\n1,3.6\n2,4.7\n");
  ASSERT_TRUE(WriteCurveSvg(base + ".svg", "Train <loss> & \"more\"", "iteration", "loss", c).ok());
  std::string svg = testing::ReadAll(base + ".svg");
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_NE(svg.find("Train &lt;loss&gt; &amp; &quot;more&quot;"), std::string::npos);
  EXPECT_EQ(Count(svg, "<polyline"), 1u);
  ExpectWellFormedNumbers(svg);
  // Zero-based y with round ticks: 0, 5, ..., 25.
  EXPECT_TRUE(HasLabel(svg, "0") && HasLabel(svg, "10") && HasLabel(svg, "25"));
}

TEST(PlotTest, LossChartOnALinearAxis) {
  const std::string path = ::testing::TempDir() + "/tutorial_loss.svg";
  ASSERT_TRUE(WriteLossSvg(path, "mnist_linear: training loss", TutorialLoss()).ok());
  std::string svg = testing::ReadAll(path);
  ExpectWellFormedNumbers(svg);
  EXPECT_TRUE(HasLabel(svg, "training step"));
  EXPECT_TRUE(HasLabel(svg, "loss"));
  EXPECT_TRUE(HasLabel(svg, "raw"));
  EXPECT_TRUE(HasLabel(svg, "smoothed"));
  for (const char* tick : {"0", "5000", "10000", "35000", "0.0", "0.5", "1.0", "1.5", "2.0"}) {
    EXPECT_TRUE(HasLabel(svg, tick)) << tick;
  }
  auto lines = PolylineYs(svg);
  ASSERT_EQ(lines.size(), 2u);  // raw, then smoothed over it
  EXPECT_EQ(lines[0].size(), TutorialLoss().size());
  EXPECT_EQ(lines[1].size(), TutorialLoss().size());
  EXPECT_NE(svg.find("stroke-opacity"), std::string::npos);  // raw drawn light
}

TEST(PlotTest, LossChartOnALogAxis) {
  Curve c;
  for (int i = 0; i < 5000; ++i) {
    c.push_back({10.0 * i, 2.3 * std::pow(0.005 / 2.3, i / 4999.0) * (1 + 0.3 * std::sin(i))});
  }
  const std::string path = ::testing::TempDir() + "/long_loss.svg";
  ASSERT_TRUE(WriteLossSvg(path, "long run", c).ok());
  std::string svg = testing::ReadAll(path);
  ExpectWellFormedNumbers(svg);
  EXPECT_TRUE(HasLabel(svg, "loss (log scale)"));
  for (const char* tick : {"0.005", "0.01", "0.02", "0.05", "0.1", "0.2", "0.5", "1", "2"}) {
    EXPECT_TRUE(HasLabel(svg, tick)) << tick;
  }
  // Equal ratios, equal distances: 0.01 to 0.1 as far apart as 0.1 to 1.
  auto tick_y = [&](const std::string& label) {
    size_t at = svg.find(">" + label + "</text>");
    size_t y = svg.rfind(" y=\"", at);
    return std::stod(svg.substr(y + 4));
  };
  EXPECT_NEAR(tick_y("0.01") - tick_y("0.1"), tick_y("0.1") - tick_y("1"), 0.02);
}

TEST(PlotTest, AccuracyChartFillsItsHeight) {
  std::vector<std::pair<std::string, Curve>> series = {
      {"train", {{1, 0.952}, {2, 0.971}, {3, 0.978}, {4, 0.984}, {5, 0.989}}},
      {"test", {{1, 0.958}, {2, 0.969}, {3, 0.975}, {4, 0.979}, {5, 0.981}}}};
  const std::string path = ::testing::TempDir() + "/accuracy.svg";
  ASSERT_TRUE(WriteAccuracySvg(path, "mnist_cnn: accuracy per epoch", series).ok());
  std::string svg = testing::ReadAll(path);
  ExpectWellFormedNumbers(svg);
  EXPECT_EQ(Count(svg, "<circle"), 10u + 2u);  // every point, and one in each legend entry
  for (const char* tick : {"1", "2", "3", "4", "5", "0.96", "0.97", "0.98", "0.99"}) {
    EXPECT_TRUE(HasLabel(svg, tick)) << tick;
  }
  EXPECT_FALSE(HasLabel(svg, "1.5"));  // whole epochs only
  EXPECT_TRUE(HasLabel(svg, "train") && HasLabel(svg, "test"));
  // The train line spans most of the plot's height, not a flat line near the top.
  auto lines = PolylineYs(svg);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_GT(lines[0].front() - lines[0].back(), 200);
}

TEST(PlotTest, NonFinitePointsAreSkipped) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  Curve c = {{0, 2.0}, {1, nan}, {2, 1.5}, {3, inf}, {nan, 1.0}, {5, 1.2}, {6, -inf}, {7, 1.1}};
  const std::string path = ::testing::TempDir() + "/nonfinite.svg";
  ASSERT_TRUE(WriteLossSvg(path, "t", c).ok());
  std::string svg = testing::ReadAll(path);
  ExpectWellFormedNumbers(svg);
  auto lines = PolylineYs(svg);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].size(), 4u);
  ASSERT_TRUE(WriteAccuracySvg(path, "t", {{"train", {{1, 0.9}, {2, nan}, {3, 0.95}}}}).ok());
  svg = testing::ReadAll(path);
  ExpectWellFormedNumbers(svg);
  EXPECT_EQ(Count(svg, "<circle"), 2u + 1u);
}

TEST(PlotTest, ChartsWithoutDataSayNoData) {
  const std::string path = ::testing::TempDir() + "/empty.svg";
  const double nan = std::numeric_limits<double>::quiet_NaN();
  ASSERT_TRUE(WriteLossSvg(path, "t", {}).ok());
  std::string svg = testing::ReadAll(path);
  ExpectWellFormedNumbers(svg);
  EXPECT_TRUE(HasLabel(svg, "no data"));
  ASSERT_TRUE(WriteLossSvg(path, "t", {{0, nan}}).ok());
  EXPECT_TRUE(HasLabel(testing::ReadAll(path), "no data"));
  ASSERT_TRUE(WriteAccuracySvg(path, "t", {}).ok());
  EXPECT_TRUE(HasLabel(testing::ReadAll(path), "no data"));
  ASSERT_TRUE(WriteAccuracySvg(path, "t", {{"train", {}}}).ok());
  svg = testing::ReadAll(path);
  ExpectWellFormedNumbers(svg);
  EXPECT_TRUE(HasLabel(svg, "no data"));
}

TEST(PlotTest, OnePointAndEqualValues) {
  const std::string path = ::testing::TempDir() + "/one.svg";
  ASSERT_TRUE(WriteLossSvg(path, "t", {{0, 0.7}}).ok());
  std::string svg = testing::ReadAll(path);
  ExpectWellFormedNumbers(svg);
  EXPECT_EQ(Count(svg, "<circle"), 1u);
  ASSERT_TRUE(WriteAccuracySvg(path, "t", {{"test", {{1, 0.97}, {2, 0.97}}}}).ok());
  ExpectWellFormedNumbers(testing::ReadAll(path));
}

TEST(PlotTest, UnwritablePathIsAnError) {
  EXPECT_FALSE(WriteCurveCsv("/nonexistent/dir/x.csv", "a", "b", {}).ok());
  EXPECT_FALSE(WriteLossSvg("/nonexistent/dir/x.svg", "t", {{0, 1}}).ok());
  EXPECT_FALSE(WriteAccuracySvg("/nonexistent/dir/x.svg", "t", {}).ok());
}

}  // namespace
}  // namespace kiln
