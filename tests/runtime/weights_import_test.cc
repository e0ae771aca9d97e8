// Importing weights written elsewhere under a name map; the AOT manifest's parser.
#include "runtime/weights_import.h"

#include "gtest/gtest.h"
#include "runtime/manifest.h"
#include "tests/runtime/test_files.h"

namespace kiln {
namespace {

TEST(NameMapTest, ParsesLinesCommentsAndTranspose) {
  auto m = ParseNameMap("# header\nfc.weight  classifier.weight transpose\n\nfc.bias b # c\n", "m");
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->size(), 2u);
  EXPECT_EQ((*m)[0].kiln, "fc.weight");
  EXPECT_EQ((*m)[0].source, "classifier.weight");
  EXPECT_TRUE((*m)[0].transpose);
  EXPECT_EQ((*m)[1].source, "b");
  EXPECT_FALSE((*m)[1].transpose);
}

TEST(NameMapTest, RejectsMalformedLinesDuplicatesAndEmptyMaps) {
  auto bad = ParseNameMap("a b\nc d flip\n", "map.txt");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("map.txt:2: expected"), std::string::npos) << bad.status();
  auto dup = ParseNameMap("a b\na c\n", "map.txt");
  EXPECT_NE(dup.status().message().find("map.txt:2: 'a' is mapped twice"), std::string::npos);
  EXPECT_FALSE(ParseNameMap("# nothing\n", "m").ok());
  EXPECT_EQ(ParseNameMapFile("/nonexistent/map").status().code(), absl::StatusCode::kNotFound);
}

TEST(ImportTest, RenamesAndTransposes) {
  Tensor w(ScalarType::kF32, {2, 3}), b(ScalarType::kF32, {3});
  for (int i = 0; i < 6; ++i) w.data<float>()[i] = static_cast<float>(i);  // [[0 1 2] [3 4 5]]
  const std::string path = ::testing::TempDir() + "/import.safetensors";
  ASSERT_TRUE(SaveSafetensors(path, {{"lin.weight", &w}, {"lin.bias", &b}}).ok());
  auto f = ImportSafetensors(path, {{"fc.weight", "lin.weight", true}, {"fc.bias", "lin.bias"}});
  ASSERT_TRUE(f.ok()) << f.status();
  const Tensor* t = f->Find("fc.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->shape(), (Shape{3, 2}));
  const float want[6] = {0, 3, 1, 4, 2, 5};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(t->data<float>()[i], want[i]) << i;
  EXPECT_EQ(f->Find("lin.weight"), nullptr);
  auto missing = ImportSafetensors(path, {{"fc.weight", "nope"}});
  EXPECT_NE(missing.status().message().find("'nope' (for 'fc.weight') is not in the file"),
            std::string::npos);
  auto not2d = ImportSafetensors(path, {{"fc.bias", "lin.bias", true}});
  EXPECT_NE(not2d.status().message().find("cannot be transposed"), std::string::npos);
}

TEST(ManifestTest, RoundTripsAndRejectsBadFields) {
  AotManifest m;
  m.name = "p";
  m.target = "x86-64-linux-avx2";
  m.optimizer = "adam";
  m.batch = 4;
  m.eval_batch = 10;
  m.defaults.lr = 0.5;
  m.train.inputs = {
      {"image", ArgRole::kData, ScalarType::kU8, {4, 784}, {}},
      {"fc.weight", ArgRole::kParam, ScalarType::kF32, {784, 10}, Initializer::XavierUniform()}};
  m.train.outputs = {{"loss", ArgRole::kLoss, ScalarType::kF32, {}, {}}};
  m.train.inputs[0].kind = ArgKind::kExample;
  m.train.inputs.push_back(
      {"fc.weight/m", ArgRole::kState, ScalarType::kF32, {784, 10}, {}, ArgKind::kNone, 1});
  m.train.outputs.push_back({"fc.weight",
                             ArgRole::kNewParam,
                             ScalarType::kF32,
                             {784, 10},
                             {},
                             ArgKind::kNone,
                             -1,
                             /*updates=*/1});
  m.eval.inputs = {{"image", ArgRole::kData, ScalarType::kU8, {10, 784}, {}, ArgKind::kExample}};
  m.eval.outputs = {
      {"prediction", ArgRole::kOutput, ScalarType::kI32, {10}, {}, ArgKind::kPrediction}};
  auto back = ParseManifest(ManifestToJson(m));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->train.inputs[1].init.kind, Initializer::Kind::kXavierUniform);
  EXPECT_EQ(back->train.inputs[0].type, ScalarType::kU8);
  EXPECT_EQ(back->defaults.lr, 0.5);
  EXPECT_EQ(back->train.inputs[0].kind, ArgKind::kExample);
  EXPECT_EQ(back->train.inputs[2].param, 1);
  EXPECT_EQ(back->train.outputs[1].updates, 1);
  EXPECT_EQ(back->eval.FindOutput(ArgKind::kPrediction), 0);
  EXPECT_EQ(ManifestToJson(*back), ManifestToJson(m));

  auto with = [&](const std::string& from, const std::string& to) {
    std::string j = ManifestToJson(m);
    size_t at = j.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return ParseManifest(j.replace(at, from.size(), to)).status();
  };
  EXPECT_NE(with("\"F32\"", "\"F16\"").message().find("dtype 'F16' is unknown"), std::string::npos);
  EXPECT_NE(
      with("\"role\": \"loss\"", "\"role\": \"lost\"").message().find("role 'lost' is unknown"),
      std::string::npos);
  EXPECT_NE(with("784,\n", "-784,\n").message().find("not a valid tensor shape"),
            std::string::npos);
  EXPECT_NE(with("\"batch\": 4", "\"batch\": 5").message().find("expected batch 5 first"),
            std::string::npos);
  EXPECT_NE(with("\"version\": 2", "\"version\": 3").message().find("version 3"),
            std::string::npos);
  EXPECT_NE(with("\"version\": 2", "\"version\": 1").message().find("rebuild the binary"),
            std::string::npos);
  EXPECT_NE(with("\"kind\": \"prediction\"", "\"kind\": \"guess\"")
                .message()
                .find("kind 'guess' is unknown"),
            std::string::npos);
  // Links that do not fit: an update of an input of another role, a state of no parameter.
  EXPECT_NE(with("\"updates\": 1", "\"updates\": 0").message().find("updates input 'image'"),
            std::string::npos);
  EXPECT_NE(with("\"param\": 1", "\"param\": 0").message().find("is not a parameter input"),
            std::string::npos);
  EXPECT_NE(with("\"kind\": \"example\"", "\"kind\": \"order\"")
                .message()
                .find("this kind does not fit this role"),
            std::string::npos);
  // A float where an integer belongs (found by the fuzz target: converting it was undefined).
  EXPECT_NE(with("\"batch\": 4", "\"batch\": 1.33e27").message().find("out of range"),
            std::string::npos);
  EXPECT_NE(with("\"version\": 2", "\"version\": 4294967296").message().find("out of range"),
            std::string::npos);
  EXPECT_FALSE(ParseManifest("{").ok());
  EXPECT_FALSE(ParseManifest(std::string(2 << 20, ' ')).ok());

  // A training step cut into two pipelines: the first writes an intermediate (the logits), the
  // second reads it and writes both step outputs.
  m.segments["train"].intermediates = {
      {"segment_7", ArgRole::kData, ScalarType::kF32, {4, 10}, {}}};
  m.segments["train"].parts = {{{}, {-1}}, {{0}, {0, 1}}};
  back = ParseManifest(ManifestToJson(m));
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->segments.count("train"), 1u);
  EXPECT_EQ(back->segments.count("eval"), 0u);
  const SegmentPlan& plan = back->segments.at("train");
  ASSERT_EQ(plan.parts.size(), 2u);
  EXPECT_EQ(plan.parts[1].reads, std::vector<int>{0});
  EXPECT_EQ(plan.parts[1].writes, (std::vector<int>{0, 1}));
  EXPECT_EQ(ManifestToJson(*back), ManifestToJson(m));
  // The second segment's signature: the step's inputs, then the intermediate; its two outputs.
  Signature second = SegmentSignature(back->train, plan, 1);
  ASSERT_EQ(second.inputs.size(), 4u);
  EXPECT_EQ(second.inputs[3].name, "segment_7");
  EXPECT_EQ(second.outputs.size(), 2u);
  EXPECT_EQ(SegmentSignature(back->train, plan, 0).outputs[0].role, ArgRole::kOutput);
  // Routes that do not fit.
  auto routed = [&](std::vector<SegmentPlan::Part> parts) {
    AotManifest bad = m;
    bad.segments["train"].parts = std::move(parts);
    return ParseManifest(ManifestToJson(bad)).status();
  };
  EXPECT_NE(routed({{{}, {-1}}, {{0}, {0, 0}}}).message().find("written twice"), std::string::npos);
  EXPECT_NE(routed({{{}, {-2}}, {{0}, {0, 1}}}).message().find("intermediate 1 is out of range"),
            std::string::npos);
  EXPECT_NE(routed({{{0}, {-1}}, {{}, {0, 1}}})
                .message()
                .find("segment 1 of 2: intermediate 0 is read before any segment writes it"),
            std::string::npos);
  EXPECT_NE(routed({{{}, {-1}}, {{0}, {0}}}).message().find("no segment writes the step's output"),
            std::string::npos);
  EXPECT_NE(routed({{{}, {-1}}, {{0}, {}}, {{0}, {0, 1}}}).message().find("writes nothing"),
            std::string::npos);
}

}  // namespace
}  // namespace kiln
