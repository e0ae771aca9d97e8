// main() of the generated NAME_predict executables (RunPredictMain, runtime/inference.h). Its
// flags live in this file alone: the C inference library (NAME_inference_all.a) never links it,
// and no program links both it and the driver (runtime/driver.cc), whose flags have the same
// names (the linker would refuse the duplicate symbols).
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "runtime/image.h"
#include "runtime/inference.h"

ABSL_FLAG(std::string, checkpoint, "",
          "the Kiln checkpoint (safetensors) with the model's parameters (required)");
ABSL_FLAG(bool, invert, false,
          "the images are dark digits on a light background (photos, scans): invert them first");

namespace kiln {

int RunPredictMain(int argc, char** argv, const AotProgram& program) {
  absl::FlagsUsageConfig config;
  // --help lists this program's flags only, not those of the libraries linked in.
  config.contains_help_flags = [](absl::string_view file) {
    return file == "flags" || absl::StrContains(file, "predict_main");
  };
  config.normalize_filename = [](absl::string_view file) -> std::string {
    return absl::StrContains(file, "predict_main") ? "flags" : std::string(file);
  };
  absl::SetFlagsUsageConfig(config);
  const std::string usage = absl::StrCat(
      "Classifies PNG or JPEG digit images with a model compiled ahead of time; prints "
      "\"IMAGE: DIGIT\" per image.\nUsage: ",
      argv[0], " --checkpoint=FILE [--invert] IMAGE...");
  absl::SetProgramUsageMessage(usage);
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  const std::string checkpoint = absl::GetFlag(FLAGS_checkpoint);
  const std::vector<std::string> images(args.begin() + 1, args.end());
  if (checkpoint.empty() || images.empty()) {
    std::fprintf(stderr, "error: %s\n%s\n",
                 checkpoint.empty() ? "--checkpoint is required" : "no image to classify",
                 usage.c_str());
    return 2;
  }
  auto s = InferenceSession::Create(program, checkpoint);
  if (!s.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(s.status().ToString()).c_str());
    return 1;
  }
  const int side = static_cast<int>(std::lround(std::sqrt((*s)->example_size())));
  for (const std::string& path : images) {
    auto x = LoadDigitImage(path, side, side, absl::GetFlag(FLAGS_invert));
    if (!x.ok()) {
      std::fprintf(stderr, "error: %s\n", std::string(x.status().ToString()).c_str());
      return 1;
    }
    std::vector<uint8_t> px(x->size());
    for (size_t k = 0; k < px.size(); ++k) {
      px[k] = static_cast<uint8_t>(std::lround(std::fmin(1.0f, std::fmax(0.0f, (*x)[k])) * 255));
    }
    auto p = (*s)->Predict(px.data(), 1);
    if (!p.ok()) {
      std::fprintf(stderr, "error: %s\n", std::string(p.status().ToString()).c_str());
      return 1;
    }
    std::printf("%s: %d\n", path.c_str(), (*p)[0]);
  }
  return 0;
}

}  // namespace kiln
