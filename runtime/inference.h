// Forward-only use of an ahead-of-time compiled model: its evaluation step and the parameters of a
// checkpoint, for programs that deploy a model trained with Kiln (the generated
// NAME_inference.h C API and NAME_predict executable are built on it). Runtime only.
//
//   auto s = kiln::InferenceSession::Create(program, "mnist_cnn.safetensors");
//   absl::StatusOr<std::vector<int32_t>> digits = (*s)->Predict(pixels, count);
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/tensor.h"
#include "runtime/aot_program.h"
#include "runtime/manifest.h"

namespace kiln {

class InferenceSession {
 public:
  // The program's manifest and evaluation step (its training step is not needed and may be
  // null); the checkpoint must hold every parameter (and buffer) the step reads, with the
  // manifest's shapes.
  static absl::StatusOr<std::unique_ptr<InferenceSession>> Create(const AotProgram& program,
                                                                  const std::string& checkpoint);
  // `count` examples of example_size() raw pixels each (uint8, row-major).
  absl::StatusOr<std::vector<int32_t>> Predict(const uint8_t* pixels, int64_t count);
  int64_t example_size() const { return example_size_; }
  const AotManifest& manifest() const { return manifest_; }

 private:
  AotManifest manifest_;
  std::unique_ptr<Executable> eval_;
  std::vector<Tensor> inputs_, outputs_;
  int image_ = -1, prediction_ = -1;
  int64_t example_size_ = 0;
};

// main() of a generated NAME_predict executable:
//   NAME_predict --checkpoint=FILE [--invert] IMAGE...   prints "IMAGE: DIGIT" per image.
int RunPredictMain(int argc, char** argv, const AotProgram& program);

}  // namespace kiln
