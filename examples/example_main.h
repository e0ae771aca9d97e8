// The shared driver of the MNIST examples: flags, data loading, compiling the training and
// evaluation steps, the training loop, checkpoints, the loss curve, prediction of one image file,
// test accuracy with a confusion matrix, and the closing RESULT line. Each example supplies only
// its model and its defaults.
//
//   int main(int argc, char** argv) {
//     kiln::examples::Example e{"mnist_softmax", BuildModel, MakeOptimizer, /*epochs=*/5, ...};
//     return kiln::examples::RunExample(argc, argv, e);
//   }
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "compiler/model.h"
#include "compiler/optimizer.h"
#include "dsl/graph.h"

namespace kiln::examples {

struct Example {
  std::string name;
  std::string description;
  // Builds the model for a batch size: inputs {image [B, 784] float, label [B] int32}, the loss,
  // metrics and an eval output "prediction" (int32 [B]).
  std::function<ModelDef(Graph&, int64_t batch)> build;
  std::string optimizer;  // default --optimizer (see MakeOptimizer)
  int epochs;
  int64_t batch_size;
  double lr;
  int64_t log_every;
  std::string predict = "";              // default --predict image ("" for none)
  std::string lr_schedule = "constant";  // default --lr_schedule
  int random_shift = 0;                  // default --random_shift
  double weight_decay = 0;               // default --weight_decay
  // Which parameters --weight_decay applies to (by name): all but biases unless the model says.
  std::function<bool(const std::string&)> decays = DecayAllButBiases;
};

// Returns the process exit code: 0 on success, 1 on any error or when the test accuracy is
// below --min_accuracy.
int RunExample(int argc, char** argv, const Example& example);

}  // namespace kiln::examples
