#include "compiler/cache.h"

#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/sha256.h"
#include "base/status.h"
#include "compiler/jit.h"
#include "runtime/native_step.h"

extern char** environ;

namespace kiln {
namespace {

std::string Env(const char* name, bool* set = nullptr) {
  const char* v = std::getenv(name);
  if (set) *set = v != nullptr;
  return v ? v : "";
}

// Runs argv[0] (searched on PATH) and waits; the exit status, or -1 if it could not start.
int Spawn(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid;
  if (posix_spawnp(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) return -1;
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string UniqueSuffix() {
  static std::atomic<int> counter{0};
  return absl::StrCat(".tmp.", getpid(), ".", counter++, ".",
                      std::chrono::steady_clock::now().time_since_epoch().count());
}

// Links `inputs` into a sealed shared object and renames it to `final_path`. Temporary files are
// private to this process and removed on every path.
absl::Status LinkSealRename(const std::vector<std::string>& inputs, const std::string& tmp,
                            const std::string& final_path) {
  std::string cc = Env("KILN_CC");
  if (cc.empty()) cc = "cc";
  std::vector<std::string> cmd = {cc, "-shared", "-o", tmp, "-Wl,--whole-archive"};
  cmd.insert(cmd.end(), inputs.begin(), inputs.end());
  cmd.insert(cmd.end(), {"-Wl,--no-whole-archive", "-lpthread", "-ldl", "-lm"});
  if (int rc = Spawn(cmd); rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("linking with '", cc, "' failed (",
                     rc < 0 ? std::string("not found") : absl::StrCat("exit status ", rc), ")"));
  }
  KILN_RETURN_IF_ERROR(SealCacheFile(tmp));
  if (std::rename(tmp.c_str(), final_path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot rename ", tmp, " to ", final_path));
  }
  return absl::OkStatus();
}

struct TempFiles {
  std::vector<std::string> files;
  ~TempFiles() {
    for (const std::string& f : files) std::remove(f.c_str());
  }
};

// Halide's runtime for `target`, once per cache directory and build: every step of every process
// shares it (one thread pool), and a step's own compile skips the runtime's code generation.
absl::StatusOr<std::string> EnsureRuntime(const Halide::Target& target, const std::string& dir) {
  const std::string path =
      absl::StrCat(dir, "/halide_runtime-",
                   CacheKey(absl::StrCat("runtime ", target.to_string())).substr(0, 32), ".so");
  if (VerifyCacheFile(path).ok()) return path;
  const std::string base = path + UniqueSuffix();
  TempFiles tmp{{base + ".o", base + ".so"}};
  try {
    Halide::compile_standalone_runtime(base + ".o", target);
  } catch (const Halide::Error& e) {
    return absl::InternalError(absl::StrCat("Halide compilation failed: ", e.what()));
  }
  KILN_RETURN_IF_ERROR(LinkSealRename({base + ".o"}, base + ".so", path));
  return path;
}

// Compiles `step` (without a runtime) to a static library and links it into a sealed shared
// object at `final_path`.
absl::Status Store(LoweredStep& step, const Halide::Target& target, const std::string& final_path) {
  const std::string base = final_path + UniqueSuffix();
  TempFiles tmp{{base + ".a", base + ".h", base + ".so"}};
  std::vector<Halide::Argument> args = step.arguments();
  try {
    step.pipeline.compile_to_static_library(base, args, kNativeStepName,
                                            target.with_feature(Halide::Target::NoRuntime));
  } catch (const Halide::Error& e) {
    return absl::InternalError(absl::StrCat("Halide compilation failed: ", e.what()));
  }
  return LinkSealRename({base + ".a"}, base + ".so", final_path);
}

}  // namespace

std::string DefaultCacheDir() {
  bool set = false;
  std::string dir = Env("KILN_CACHE_DIR", &set);
  if (set) return dir;
  if (std::string x = Env("XDG_CACHE_HOME"); !x.empty()) return x + "/kiln";
  if (std::string h = Env("HOME"); !h.empty()) return h + "/.cache/kiln";
  return "";
}

std::string CacheKey(const std::string& material) {
  return Sha256Hex(absl::StrCat("kiln-step-v1\n", kBuildId, "\n", material));
}

std::unique_ptr<Executable> LoadCachedIfPresent(const Signature& sig, const Halide::Target& target,
                                                const std::string& dir, const std::string& key,
                                                bool report) {
  const std::string path = absl::StrCat(dir, "/", key, ".so");
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return nullptr;
  absl::StatusOr<std::string> runtime =
      EnsureRuntime(target.without_feature(Halide::Target::JIT), dir);
  if (!runtime.ok() || !LoadHalideRuntime(*runtime).ok()) return nullptr;
  auto exe = LoadCachedStep(path, sig, 0);
  if (!exe.ok()) {
    if (report) {
      std::fprintf(stderr, "kiln: compile cache entry unusable, recompiling: %s\n",
                   std::string(exe.status().message()).c_str());
    }
    return nullptr;
  }
  return std::move(*exe);
}

absl::StatusOr<CacheResult> CompileCached(LoweredStep step, Signature sig,
                                          const Halide::Target& target, const std::string& dir,
                                          const std::string& key) {
  const auto t0 = std::chrono::steady_clock::now();
  auto seconds = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  CacheResult out;
  out.path = absl::StrCat(dir, "/", key, ".so");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  // The JIT feature is the in-memory compiler's; cached code carries neither it nor a runtime.
  const Halide::Target native = target.without_feature(Halide::Target::JIT);
  absl::StatusOr<std::string> runtime = EnsureRuntime(native, dir);
  absl::Status stored = runtime.status();
  if (runtime.ok()) stored = LoadHalideRuntime(*runtime);
  if (stored.ok()) {
    out.executable = LoadCachedIfPresent(sig, target, dir, key);
    if (out.executable != nullptr) {
      out.hit = true;
      return out;
    }
  }
  if (stored.ok()) stored = Store(step, native, out.path);
  if (stored.ok()) {
    auto exe = LoadCachedStep(out.path, sig, seconds());
    if (exe.ok()) {
      out.executable = std::move(*exe);
      return out;
    }
    stored = exe.status();
  }
  if (stored.code() == absl::StatusCode::kInternal &&
      absl::StrContains(stored.message(), "Halide compilation failed")) {
    return stored;
  }
  static std::atomic<bool> warned{false};
  if (!warned.exchange(true)) {
    std::fprintf(stderr, "kiln: compile cache in %s not used (%s); compiling in memory\n",
                 dir.c_str(), std::string(stored.message()).c_str());
  }
  KILN_ASSIGN_OR_RETURN(out.executable, JitCompile(std::move(step), std::move(sig), target));
  out.path.clear();
  return out;
}

}  // namespace kiln
