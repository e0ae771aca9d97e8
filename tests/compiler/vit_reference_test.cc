// The MNIST vision transformer (examples/models.h) against PyTorch: the loss and every parameter's
// gradient of one training batch, from the same float32 start, within 1e-4 relative and 1e-6
// absolute. tests/data/vit_reference.safetensors holds PyTorch's float64 values, written by
// scripts/make_vit_reference.py (Debian's torch), so this test runs without PyTorch.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "compiler/autodiff.h"
#include "compiler/model.h"
#include "dsl/api.h"
#include "examples/models.h"
#include "gtest/gtest.h"
#include "runtime/safetensors.h"

namespace kiln {
namespace {

double At(const Tensor& t, int64_t i) {
  return t.type() == ScalarType::kF64 ? t.data<double>()[i] : t.data<float>()[i];
}

TEST(VitReferenceTest, OneBatchLossAndGradientsMatchPyTorch) {
  auto ref =
      LoadSafetensors(std::string(KILN_TEST_SOURCE_DIR) + "/tests/data/vit_reference.safetensors");
  ASSERT_TRUE(ref.ok()) << ref.status();
  const Tensor* image = ref->Find("input/image");
  const Tensor* label = ref->Find("input/label");
  const Tensor* want_loss = ref->Find("loss");
  ASSERT_TRUE(image != nullptr && label != nullptr && want_loss != nullptr);
  const int64_t batch = image->shape()[0];

  Graph g(Mode::kTrain);
  ModelDef m = examples::MnistVit(g, batch);
  ASSERT_TRUE(g.status().ok()) << g.status();
  std::vector<Value> params;
  for (int id = 0; id < g.size(); ++id) {
    if (g.node(id).op == OpKind::kParameter) params.push_back(g.value(id));
  }
  auto grads = Gradients(m.loss, params);
  ASSERT_TRUE(grads.ok()) << grads.status();

  StepProgram p;
  p.inputs.push_back({m.inputs[0].id(),
                      ArgSpec{"image", ArgRole::kData, ScalarType::kU8, m.inputs[0].shape(), {}}});
  p.inputs.push_back({m.inputs[1].id(),
                      ArgSpec{"label", ArgRole::kData, ScalarType::kI32, m.inputs[1].shape(), {}}});
  for (const Value& v : params) {
    p.inputs.push_back(
        {v.id(), ArgSpec{v.name(), ArgRole::kData, ScalarType::kF32, v.shape(), {}}});
  }
  p.outputs.push_back({m.loss.id(), ArgSpec{"loss", ArgRole::kOutput, ScalarType::kF32, {}, {}}});
  for (size_t i = 0; i < params.size(); ++i) {
    p.outputs.push_back({(*grads)[i].id(), ArgSpec{"grad/" + params[i].name(),
                                                   ArgRole::kOutput,
                                                   ScalarType::kF32,
                                                   params[i].shape(),
                                                   {}}});
  }
  auto step = CompileProgram(g, p, {});
  ASSERT_TRUE(step.ok()) << step.status();

  // Every parameter of the graph is in the file with the graph's shape, and nothing else is.
  std::vector<Tensor> in, out;
  in.push_back(*image);
  in.push_back(*label);
  size_t file_params = 0;
  for (const auto& [name, t] : ref->tensors) file_params += name.rfind("param/", 0) == 0;
  EXPECT_EQ(file_params, params.size());
  for (const Value& v : params) {
    const Tensor* t = ref->Find("param/" + v.name());
    ASSERT_NE(t, nullptr) << "no parameter " << v.name() << " in the reference";
    ASSERT_EQ(t->shape(), v.shape()) << v.name();
    in.push_back(*t);
  }
  for (const auto& [id, spec] : p.outputs) out.emplace_back(spec.type, spec.shape);
  std::vector<TensorRef> ir, orf;
  for (Tensor& t : in) ir.push_back(t.ref());
  for (Tensor& t : out) orf.push_back(t.ref());
  ASSERT_TRUE((*step)->Run(ir, orf).ok());

  const double loss = out[0].data<float>()[0], want = At(*want_loss, 0);
  EXPECT_NEAR(loss, want, 1e-4 * std::fabs(want)) << "loss";
  double worst = 0;
  std::string worst_at;
  for (size_t i = 0; i < params.size(); ++i) {
    const Tensor* t = ref->Find("grad/" + params[i].name());
    ASSERT_NE(t, nullptr) << "no gradient of " << params[i].name() << " in the reference";
    ASSERT_EQ(t->shape(), params[i].shape());
    double scale = 0;
    for (int64_t e = 0; e < t->size(); ++e) scale = std::max(scale, std::fabs(At(*t, e)));
    EXPECT_GT(scale, 0) << params[i].name() << ": the reference gradient is zero";
    for (int64_t e = 0; e < t->size(); ++e) {
      const double got = out[1 + i].data<float>()[e], ref_v = At(*t, e);
      const double err = std::fabs(got - ref_v);
      ASSERT_LE(err, 1e-6 + 1e-4 * std::fabs(ref_v))
          << params[i].name() << "[" << e << "]: Kiln " << got << ", PyTorch " << ref_v;
      const double rel = err / (std::fabs(ref_v) + 1e-6);
      if (rel > worst) worst = rel, worst_at = params[i].name();
    }
  }
  std::printf(
      "loss %.9f (PyTorch %.9f); %zu gradients, worst error %.3g relative (to |g| + 1e-6) "
      "in %s\n",
      loss, want, params.size(), worst, worst_at.c_str());
}

}  // namespace
}  // namespace kiln
