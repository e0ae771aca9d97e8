#include "runtime/plot.h"

#include "gtest/gtest.h"
#include "tests/runtime/test_files.h"

namespace kiln {
namespace {

TEST(PlotTest, WritesCsvAndSvg) {
  Curve c = {{0, 24.7}, {1, 3.6}, {2, 4.7}};
  std::string base = ::testing::TempDir() + "/loss";
  ASSERT_TRUE(WriteCurveCsv(base + ".csv", "index", "loss", c).ok());
  EXPECT_EQ(testing::ReadAll(base + ".csv"), "index,loss\n0,24.7\n1,3.6\n2,4.7\n");
  ASSERT_TRUE(WriteCurveSvg(base + ".svg", "Train <loss>", "iteration", "loss", c).ok());
  std::string svg = testing::ReadAll(base + ".svg");
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_NE(svg.find("Train &lt;loss&gt;"), std::string::npos);
  EXPECT_NE(svg.find("<polyline"), std::string::npos);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
}

TEST(PlotTest, UnwritablePathIsAnError) {
  EXPECT_FALSE(WriteCurveCsv("/nonexistent/dir/x.csv", "a", "b", {}).ok());
}

}  // namespace
}  // namespace kiln
