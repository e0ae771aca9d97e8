// main() of the ahead-of-time compiled training binaries: the manifest is parsed and validated,
// each compiled step is checked against its signature, and the shared driver (runtime/driver.h)
// does the rest with the same flags and RESULT line as the JIT examples. Links the runtime only.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/sha256.h"
#include "runtime/aot_program.h"
#include "runtime/cuda_device.h"
#include "runtime/driver.h"
#include "runtime/manifest.h"
#include "runtime/step_allocator.h"
#include "runtime/step_threads.h"
#include "runtime/two_phase_step.h"

// The CUDA runtime's hook for the context it uses: weak, since only GPU binaries link that
// runtime.
extern "C" {
using KilnCudaAcquireFn = int (*)(void*, void**, bool);
KilnCudaAcquireFn halide_set_cuda_acquire_context(KilnCudaAcquireFn) __attribute__((weak));
}

namespace {

// The training run once the command line is parsed and the job joined.
int Train(const kiln::DriverOptions& o, const kiln::AotManifest& manifest,
          kiln::Communicator& comm);

}  // namespace

int main(int argc, char** argv) {
  using namespace kiln;
  absl::StatusOr<AotManifest> m = ParseManifest(kKilnAotProgram.manifest);
  if (!m.ok()) return DriverFail(m.status());
  // What the JIT examples choose by flag, this binary fixed when it was built.
  const std::string rebuild =
      "; build another binary for another one (kiln-aot --batch N, or "
      "kiln_add_training_binary(... BATCH_SIZE N))";
  const std::vector<CompiledInFlag> compiled_in = {
      {"batch_size",
       absl::StrCat("the training batch is compiled into ", m->name, ": ", m->batch, rebuild)},
      {"eval_batch_size", absl::StrCat("the evaluation batch is compiled into ", m->name, ": ",
                                       m->eval_batch, rebuild)},
      {"optimizer", absl::StrCat("the optimizer is compiled into ", m->name, ": ", m->optimizer,
                                 " (--lr and --lr_schedule still apply)")},
      {"target", absl::StrCat(m->name, " was compiled for the target ", m->target)},
  };
  const DriverOptions o = ParseDriverCommandLine(
      argc, argv,
      absl::StrCat(m->name, ": a Kiln training program compiled ahead of time (batch ", m->batch,
                   ", ", m->optimizer, ", target ", m->target, ")\nUsage: ", m->name, " [flags]"),
      {"aot_main"}, m->defaults, compiled_in);
  absl::StatusOr<std::unique_ptr<Communicator>> comm = JoinDriverJob(o);
  if (!comm.ok()) return DriverFail(comm.status());
  return FinishDriverJob(std::move(*comm), Train(o, *m, **comm));
}

namespace {

int Train(const kiln::DriverOptions& o, const kiln::AotManifest& manifest,
          kiln::Communicator& comm) {
  using namespace kiln;
  const AotManifest* m = &manifest;
  if (comm.size() > 1 && !m->two_phase) {
    return DriverFail(absl::FailedPreconditionError(absl::StrCat(
        m->name, " has a one-pipeline training step; data-parallel training over ", comm.size(),
        " ranks sums the gradients between two phases: build a two-phase binary "
        "(kiln_add_training_binary(... TWO_PHASE) or kiln-aot --two_phase)")));
  }
  // A GPU binary needs the device before anything else (libcuda is loaded at run time).
  std::unique_ptr<Communicator> device_comm;
  if (m->target.find("-cuda") != std::string::npos) {
    absl::StatusOr<CudaDevice> dev = QueryCudaDevice();
    if (!dev.ok()) return DriverFail(dev.status());
    std::printf("%s: running on %s\n", m->name.c_str(), DescribeCudaDevice(*dev).c_str());
    if (comm.size() > 1) {  // NCCL's context is Halide's too (the runtime's acquire hook)
      absl::StatusOr<std::unique_ptr<Communicator>> d = JoinDeviceCollectives(comm);
      if (!d.ok()) return DriverFail(d.status());
      device_comm = std::move(*d);
      if (&halide_set_cuda_acquire_context != nullptr) {
        halide_set_cuda_acquire_context(KilnAcquireSharedCudaContext);
      }
    }
  }
  // The steps' scratch memory comes from the pool (the runtime is linked in statically).
  halide_set_custom_malloc(StepMalloc);
  halide_set_custom_free(StepFree);
  halide_set_custom_do_par_for(StepDoParFor);  // parallel loops on Kiln's threads
  absl::StatusOr<std::unique_ptr<Executable>> train;
  if (m->two_phase) {  // the gradient and update phases, run as one step
    auto gradient = MakeAotStep(*m, "train_gradient", m->train_gradient, kKilnAotProgram.train);
    if (!gradient.ok()) return DriverFail(gradient.status());
    auto update = MakeAotStep(*m, "train_update", m->train_update, kKilnAotProgram.update);
    if (!update.ok()) return DriverFail(update.status());
    train = MakeTwoPhaseStep(std::move(*gradient), std::move(*update));
  } else {
    train = MakeAotStep(*m, "train", m->train, kKilnAotProgram.train);
  }
  if (!train.ok()) return DriverFail(train.status());
  auto eval = MakeAotStep(*m, "eval", m->eval, kKilnAotProgram.eval);
  if (!eval.ok()) return DriverFail(eval.status());
  absl::StatusOr<DriverData> data = LoadDriverData(o);
  if (!data.ok()) return DriverFail(data.status());
  if (absl::Status s = ValidateDriverOptions(o, *data, m->batch); !s.ok()) return DriverFail(s);
  if (absl::Status s =
          CheckDriverJob(comm, o,
                         {{"the program (manifest hash)",
                           Sha256Hex(std::string(kKilnAotProgram.manifest)).substr(0, 16)},
                          {"the example shape", ShapeString(data->train.example_shape)},
                          {"the training examples", absl::StrCat(data->train.count)}});
      !s.ok()) {
    return DriverFail(s);
  }
  auto form = [&](const char* key) {
    auto it = m->segments.find(key);
    return it == m->segments.end() ? std::string()
                                   : absl::StrCat(" in ", it->second.parts.size(), " segments");
  };
  const std::string train_form =
      m->two_phase ? absl::StrCat(" (two-phase step", form("train_gradient"), ")") : form("train");
  std::printf("%s: compiled ahead of time for %s, training batch %lld%s, evaluation batch %lld%s\n",
              m->name.c_str(), m->target.c_str(), static_cast<long long>(m->batch),
              train_form.c_str(), static_cast<long long>(m->eval_batch), form("eval").c_str());
  DriverInfo info;
  info.name = m->name;
  info.optimizer = m->optimizer;
  info.batch = m->batch;
  info.compile_s = 0;
  return RunDriver(o, info, *data, train->get(), eval->get(), &comm, device_comm.get());
}

}  // namespace
