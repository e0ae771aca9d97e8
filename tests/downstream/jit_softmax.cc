// The same model compiled in memory with the installed compiler and trained by the driver.
#include "compiler/model.h"
#include "runtime/driver.h"

kiln::ModelDef Softmax(kiln::Graph& g, int64_t batch);

int main(int argc, char** argv) {
  const kiln::DriverOptions o = kiln::ParseDriverCommandLine(
      argc, argv, "jit_softmax [flags]", {}, {"jit_softmax", 1, 0.2, "constant", 0, 0, ""});
  auto data = kiln::LoadDriverData(o);
  if (!data.ok()) return kiln::DriverFail(data.status());
  if (absl::Status s = kiln::ValidateDriverOptions(o, *data, 64); !s.ok()) {
    return kiln::DriverFail(s);
  }
  kiln::Graph tg, eg(kiln::Mode::kEval);
  auto train = kiln::CompileTrainStep(tg, Softmax(tg, 64), kiln::Sgd(0.2), {});
  auto eval = kiln::CompileEvalStep(eg, Softmax(eg, 1000), {});
  if (!train.ok() || !eval.ok()) {
    return kiln::DriverFail(train.ok() ? eval.status() : train.status());
  }
  return kiln::RunDriver(o, {"jit_softmax", "sgd", 64, (*train)->compile_seconds()}, *data,
                         train->get(), eval->get());
}
