// The persistent compile cache: hits skip compilation and compute exactly what the JIT computes;
// corrupt, truncated and foreign files are detected before use and recompiled; keys change with
// anything that changes the code.
#include "compiler/cache.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "base/sha256.h"
#include "compiler/model.h"
#include "dsl/api.h"
#include "gtest/gtest.h"
#include "runtime/native_step.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

ModelDef Softmax(Graph& g, double scale = 1.0) {
  ModelDef m;
  Value x = g.Input("x", {8, 20});
  Value y = g.Input("y", {8}, DType::kInt32);
  Value logits = Linear(g, "fc", 20, 5)(x) * scale;
  m.inputs = {x, y};
  m.loss = Mean(SoftmaxCrossEntropy(logits, y));
  m.metrics = {{"correct", AccuracyCount(logits, y)}};
  m.eval_outputs = {{"prediction", ArgMax(logits, 1)}};
  return m;
}

struct Args {
  std::vector<Tensor> in, out;
  std::vector<TensorRef> In() {
    std::vector<TensorRef> r;
    for (Tensor& t : in) r.push_back(t.ref());
    return r;
  }
  std::vector<TensorRef> Out() {
    std::vector<TensorRef> r;
    for (Tensor& t : out) r.push_back(t.ref());
    return r;
  }
};

Args MakeArgs(const Signature& sig) {
  Args a;
  uint32_t s = 12345;
  auto next = [&] { return (s = s * 1664525u + 1013904223u) >> 8; };
  for (const ArgSpec& spec : sig.inputs) {
    Tensor t(spec.type, spec.shape);
    for (int64_t i = 0; i < t.size(); ++i) {
      if (spec.type == ScalarType::kI32) {
        t.data<int32_t>()[i] = static_cast<int32_t>(next() % 5);
      } else {
        t.data<float>()[i] = spec.role == ArgRole::kHyper ? 0.1f : (next() % 2001) / 1000.0f - 1;
      }
    }
    a.in.push_back(std::move(t));
  }
  for (const ArgSpec& spec : sig.outputs) a.out.emplace_back(spec.type, spec.shape);
  return a;
}

class CacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kiln_cache_test_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<Executable> Compile(double scale = 1.0, bool cached = true) {
    Graph g;
    CompileOptions o;
    if (cached) o.cache_dir = dir_.string();
    auto step = CompileTrainStep(g, Softmax(g, scale), Sgd(0.1), o);
    EXPECT_TRUE(step.ok()) << step.status();
    return step.ok() ? std::move(*step) : nullptr;
  }
  std::vector<fs::path> StepFiles() const {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(dir_)) {
      if (e.path().filename().string().rfind("halide_runtime-", 0) != 0) out.push_back(e.path());
    }
    return out;
  }
  fs::path dir_;
};

TEST(Sha256Test, KnownVectors) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Sha256Hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_F(CacheTest, SecondCompileLoadsTheSameCodeAndMatchesTheJitBitForBit) {
  auto first = Compile();
  ASSERT_NE(first, nullptr);
  EXPECT_GT(first->compile_seconds(), 0);
  ASSERT_EQ(StepFiles().size(), 1u);
  auto second = Compile();
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(second->compile_seconds(), 0) << "expected a cache hit";
  auto jit = Compile(1.0, /*cached=*/false);
  ASSERT_NE(jit, nullptr);
  Args a = MakeArgs(jit->signature()), b = MakeArgs(jit->signature());
  for (int step = 0; step < 3; ++step) {  // feed each step's new parameters back
    ASSERT_TRUE(second->Run(a.In(), a.Out()).ok());
    ASSERT_TRUE(jit->Run(b.In(), b.Out()).ok());
    for (size_t i = 0; i < a.out.size(); ++i) {
      ASSERT_EQ(std::memcmp(a.out[i].raw(), b.out[i].raw(), a.out[i].bytes()), 0)
          << "output " << jit->signature().outputs[i].name << " at step " << step;
    }
    a.in[3] = a.out[2];
    a.in[4] = a.out[3];
    b.in[3] = b.out[2];
    b.in[4] = b.out[3];
  }
}

TEST_F(CacheTest, AnyChangeToTheCodeIsANewKey) {
  ASSERT_NE(Compile(1.0), nullptr);
  ASSERT_NE(Compile(1.0 + 1e-12), nullptr);  // a constant differing in the last bits
  EXPECT_EQ(StepFiles().size(), 2u);
  Graph g;
  CompileOptions o;
  o.cache_dir = dir_.string();
  o.float64 = true;
  ASSERT_TRUE(CompileTrainStep(g, Softmax(g), Sgd(0.1), o).ok());
  EXPECT_EQ(StepFiles().size(), 3u);
}

// Replaces `f` by `bytes` through a new file, as a damaged copy would arrive: the process still
// maps the old file, which must not change under it.
void Replace(const fs::path& f, const std::string& bytes) {
  std::ofstream(f.string() + ".new", std::ios::binary) << bytes;
  fs::rename(f.string() + ".new", f);
}

std::string Read(const fs::path& f) {
  std::ifstream in(f, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST_F(CacheTest, CorruptOrTruncatedFilesAreDetectedAndRecompiled) {
  ASSERT_NE(Compile(), nullptr);
  ASSERT_EQ(StepFiles().size(), 1u);
  const fs::path f = StepFiles()[0];
  const std::string good = Read(f);
  std::string flipped = good;
  flipped[flipped.size() / 2] ^= 0x5a;
  Replace(f, flipped);
  absl::Status v = VerifyCacheFile(f.string());
  EXPECT_EQ(v.code(), absl::StatusCode::kDataLoss) << v;
  EXPECT_NE(v.message().find("content hash mismatch"), std::string::npos) << v;
  auto recompiled = Compile();
  ASSERT_NE(recompiled, nullptr);
  EXPECT_GT(recompiled->compile_seconds(), 0);
  EXPECT_TRUE(VerifyCacheFile(f.string()).ok());

  Replace(f, good.substr(0, good.size() - 100));
  v = VerifyCacheFile(f.string());
  EXPECT_EQ(v.code(), absl::StatusCode::kDataLoss) << v;
  EXPECT_NE(v.message().find("not a complete Kiln cache file"), std::string::npos) << v;
  Replace(f, "ELF");
  EXPECT_NE(VerifyCacheFile(f.string()).message().find("too short"), std::string::npos);
  auto again = Compile();
  ASSERT_NE(again, nullptr);
  EXPECT_GT(again->compile_seconds(), 0);
  EXPECT_TRUE(VerifyCacheFile(f.string()).ok());
  Args a = MakeArgs(again->signature());
  EXPECT_TRUE(again->Run(a.In(), a.Out()).ok());
}

TEST_F(CacheTest, AFileCompiledForAnotherModelIsRefusedByItsMetadata) {
  auto train = Compile();
  ASSERT_NE(train, nullptr);
  const fs::path f = StepFiles()[0];
  Graph g(Mode::kEval);
  CompileOptions o;
  o.cache_dir = dir_.string();
  auto eval = CompileEvalStep(g, Softmax(g), o);
  ASSERT_TRUE(eval.ok()) << eval.status();
  // The training step's file under the evaluation step's signature.
  auto wrong = LoadCachedStep(f.string(), (*eval)->signature());
  ASSERT_EQ(wrong.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(wrong.status().message().find("compiled for another model"), std::string::npos)
      << wrong.status();
  auto right = LoadCachedStep(f.string(), train->signature());
  EXPECT_TRUE(right.ok()) << right.status();
}

// A Halide runtime error inside a cached (native) step comes back as the step's status with
// Halide's message: here an allocation the process cannot get (the [16384, 16384] product, 1 GiB,
// under an address-space limit 256 MiB above what the process has mapped), in a step compiled
// with Halide's checks (`halide_asserts`; CUDA steps always have them). Halide's default handler
// would print the message and abort the process.
TEST_F(CacheTest, AHalideRuntimeErrorIsAStatusNotAnAbort) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // the child compiles (a cache hit) and runs it
  Graph g;
  ModelDef m;
  Value x = g.Input("x", {16384, 4});
  m.inputs = {x};
  m.eval_outputs = {{"s", Sum(Relu(Linear(g, "fc", 4, 16384)(x)), {1})}};
  CompileOptions o;
  o.cache_dir = dir_.string();
  o.example_blocks = false;  // the whole product at once
  o.target.halide_asserts = true;
  auto step = CompileEvalStep(g, m, o);
  ASSERT_TRUE(step.ok()) << step.status();
  Args a = MakeArgs((*step)->signature());
  auto run_limited = [&] {
    long pages = 0;
    std::ifstream("/proc/self/statm") >> pages;
    const rlim_t cap =
        static_cast<rlim_t>(pages) * static_cast<rlim_t>(getpagesize()) + (rlim_t{256} << 20);
    const rlimit limit = {cap, cap};
    setrlimit(RLIMIT_AS, &limit);
    const absl::Status s = (*step)->Run(a.In(), a.Out());
    std::fprintf(stderr, "status: %s\n", s.ToString().c_str());
    std::fflush(stderr);
    _exit(s.ok() ? 1 : 0);
  };
  EXPECT_EXIT(run_limited(), ::testing::ExitedWithCode(0),
              "status: INTERNAL: the compiled step failed with Halide error -?[0-9]+: .*Out of "
              "memory");
}

TEST_F(CacheTest, AnUnusableCompilerFallsBackToTheJit) {
  setenv("KILN_CC", "/nonexistent/cc", 1);
  auto step = Compile();
  unsetenv("KILN_CC");
  ASSERT_NE(step, nullptr);
  EXPECT_GT(step->compile_seconds(), 0);
  EXPECT_TRUE(StepFiles().empty());
  Args a = MakeArgs(step->signature());
  EXPECT_TRUE(step->Run(a.In(), a.Out()).ok());
}

TEST(CacheDirTest, EnvironmentDecides) {
  setenv("KILN_CACHE_DIR", "/tmp/somewhere", 1);
  EXPECT_EQ(DefaultCacheDir(), "/tmp/somewhere");
  setenv("KILN_CACHE_DIR", "", 1);
  EXPECT_EQ(DefaultCacheDir(), "");
  unsetenv("KILN_CACHE_DIR");
  setenv("XDG_CACHE_HOME", "/x", 1);
  EXPECT_EQ(DefaultCacheDir(), "/x/kiln");
  unsetenv("XDG_CACHE_HOME");
}

}  // namespace
}  // namespace kiln
