// An MLP whose hidden activation is softplus, an op defined in examples/softplus_op.cc outside
// the library: it is differentiated, lowered and scheduled like the built-in ops.
#include "dsl/api.h"
#include "examples/example_main.h"
#include "examples/models.h"
#include "examples/softplus_op.h"

namespace {

kiln::ModelDef Build(kiln::Graph& g, int64_t batch) {
  kiln::Value image = g.Input("image", {batch, 784});
  kiln::Value label = g.Input("label", {batch}, kiln::DType::kInt32);
  kiln::Value h = kiln::examples::Softplus(kiln::Linear(g, "fc1", 784, 128)(image));
  return kiln::examples::Classifier(image, label, kiln::Linear(g, "fc2", 128, 10)(h));
}

}  // namespace

int main(int argc, char** argv) {
  kiln::examples::Example e{
      "mnist_custom_op", "MLP with a user-defined softplus op on MNIST, Adam.", Build, "adam",
      /*epochs=*/3,
      /*batch_size=*/64,
      /*lr=*/1e-3,
      /*log_every=*/200};
  return kiln::examples::RunExample(argc, argv, e);
}
