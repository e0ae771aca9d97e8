// The generator of an AOT training program: linked with a model file that defines KilnAotModel()
// (see compiler/aot.h), run at build time by kiln_add_training_binary or kiln-aot.
//   <generator> --name=mnist_cnn_train --out_dir=DIR --batch=64 [--eval_batch=1000]
//               [--target=host|portable|host-cuda[:CC]] [--two_phase]
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "compiler/aot.h"

ABSL_FLAG(std::string, name, "", "program name");
ABSL_FLAG(std::string, out_dir, ".", "output directory");
ABSL_FLAG(int64_t, batch, 64, "training batch size (fixed in the compiled step)");
ABSL_FLAG(int64_t, eval_batch, 1000, "evaluation batch size (the last batch is padded)");
ABSL_FLAG(std::string, target, "host",
          "host: this machine's CPU features; portable: x86-64 with AVX2 + FMA; host-cuda "
          "(or host-cuda:CC, e.g. host-cuda:86): kernels for NVIDIA GPUs, host code for this CPU");

ABSL_FLAG(bool, two_phase, false,
          "compile the training step as a gradient phase and an update phase (NAME_update.a)");
ABSL_FLAG(int64_t, train_examples, 60000,
          "CUDA targets: the training set's size (the data set stays on the device)");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  kiln::AotOptions o;
  o.name = absl::GetFlag(FLAGS_name);
  o.out_dir = absl::GetFlag(FLAGS_out_dir);
  o.batch = absl::GetFlag(FLAGS_batch);
  o.eval_batch = absl::GetFlag(FLAGS_eval_batch);
  absl::StatusOr<kiln::TargetSpec> target = kiln::ParseTarget(absl::GetFlag(FLAGS_target));
  if (!target.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(target.status().message()).c_str());
    return 2;
  }
  o.target = *target;
  o.train_examples = absl::GetFlag(FLAGS_train_examples);
  o.two_phase = absl::GetFlag(FLAGS_two_phase);
  absl::Status s = kiln::EmitTrainingProgram(KilnAotModel(), o);
  if (!s.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(s.ToString()).c_str());
    return 1;
  }
  std::printf("kiln-aot: wrote %s/%s_{train,eval%s}.a, _runtime.o, _manifest.json, _program.cc\n",
              o.out_dir.c_str(), o.name.c_str(), o.two_phase ? ",update" : "");
  return 0;
}
