// Ahead-of-time training programs: a model definition in C++ in, the pieces of a standalone
// training binary out. A model file defines `kiln::AotModel KilnAotModel()`; the generator built
// from it (compiler/aot_generator_main.cc) writes, for a program NAME:
//   NAME_train.a/.h, NAME_eval.a/.h   the two steps as Halide static libraries (no runtime;
//   NAME_update.a/.h                  with two_phase, the training step's update phase; a step
//                                     over CompileOptions::max_pipeline_stages holds one
//                                     pipeline per segment, described in the manifest),
//   NAME_runtime.o                    one Halide runtime for the target,
//   NAME_manifest.json                signatures, batch sizes, target, defaults
//   (runtime/manifest.h), NAME_program.cc                   the manifest embedded and the entry
//   points bound
//                                     (kKilnAotProgram, read by runtime/aot_main.cc).
// CMake's kiln_add_training_binary (cmake/KilnAot.cmake) and the kiln-aot command run it and link
// the result with the runtime only: no Halide, no LLVM, no compiler.
//
//   kiln::AotModel KilnAotModel() {
//     kiln::AotModel m;
//     m.build = kiln::examples::MnistCnn;
//     m.optimizer = "adam";
//     m.defaults = {"mnist_cnn_train", /*epochs=*/5, /*lr=*/2e-3, "cosine", /*random_shift=*/2};
//     return m;
//   }
#pragma once

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "compiler/model.h"
#include "runtime/driver.h"

namespace kiln {

struct AotModel {
  std::function<ModelDef(Graph&, int64_t batch)> build;
  std::string optimizer = "sgd";  // MakeOptimizer's names; the learning rate stays a runtime input
  double weight_decay = 0;        // on the parameters `decays` accepts
  std::function<bool(const std::string&)> decays = DecayAllButBiases;
  DriverDefaults defaults;  // name (overridden by the program name), epochs, lr, ...
};

struct AotOptions {
  std::string name;     // program name (a C identifier is derived from it)
  std::string out_dir;  // where the files go
  int64_t batch = 64, eval_batch = 1000;
  TargetSpec target;  // host (this machine's features), portable (x86-64 AVX2 + FMA), host-cuda
  // CUDA targets train resident on the device: the training set's size is compiled in
  // (CompileOptions::resident_examples; 60,000 for MNIST's training set).
  int64_t train_examples = 60000;
  // The training step as two pipelines (CompileOptions::two_phase): NAME_train.a holds the
  // gradient phase, NAME_update.a the update phase, the manifest both signatures.
  bool two_phase = false;
};

absl::Status EmitTrainingProgram(const AotModel& model, const AotOptions& options);

}  // namespace kiln

// Defined by the model file, at global scope.
kiln::AotModel KilnAotModel();
