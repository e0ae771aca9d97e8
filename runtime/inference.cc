#include "runtime/inference.h"

#include <cmath>
#include <cstdio>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "runtime/image.h"
#include "runtime/safetensors.h"
#include "runtime/step_allocator.h"

namespace kiln {

absl::StatusOr<std::unique_ptr<InferenceSession>> InferenceSession::Create(
    const AotProgram& program, const std::string& checkpoint) {
  auto s = std::unique_ptr<InferenceSession>(new InferenceSession);
  KILN_ASSIGN_OR_RETURN(s->manifest_, ParseManifest(program.manifest));
  halide_set_custom_malloc(StepMalloc);
  halide_set_custom_free(StepFree);
  KILN_ASSIGN_OR_RETURN(s->eval_,
                        MakeAotStep(s->manifest_, "eval", s->manifest_.eval, program.eval));
  KILN_ASSIGN_OR_RETURN(SafetensorsFile f, LoadSafetensors(checkpoint));
  const Signature& sig = s->manifest_.eval;
  for (size_t i = 0; i < sig.inputs.size(); ++i) {
    const ArgSpec& a = sig.inputs[i];
    s->inputs_.emplace_back(a.type, a.shape);
    if (a.role == ArgRole::kData) {
      if (a.kind == ArgKind::kExample) s->image_ = static_cast<int>(i);
      continue;
    }
    const Tensor* t = f.Find(a.name);
    if (t == nullptr || t->shape() != a.shape || t->type() != a.type) {
      return absl::InvalidArgumentError(
          absl::StrCat(checkpoint, ": ", ArgRoleName(a.role), " '", a.name, "' ",
                       ScalarTypeName(a.type), ShapeString(a.shape),
                       t ? absl::StrCat(" has ", ScalarTypeName(t->type()), ShapeString(t->shape()))
                         : std::string(" is missing")));
    }
    std::memcpy(s->inputs_.back().raw(), t->raw(), static_cast<size_t>(t->bytes()));
  }
  for (const ArgSpec& a : sig.outputs) s->outputs_.emplace_back(a.type, a.shape);
  s->prediction_ = sig.FindOutput(ArgKind::kPrediction);
  if (s->image_ < 0 || s->prediction_ < 0 ||
      (sig.inputs[s->image_].type != ScalarType::kU8 &&
       sig.inputs[s->image_].type != ScalarType::kF32) ||
      sig.outputs[s->prediction_].type != ScalarType::kI32) {
    return absl::InvalidArgumentError(
        "the evaluation step needs a uint8 or float32 example input and an int32 prediction "
        "output");
  }
  const Shape& shape = sig.inputs[s->image_].shape;
  s->example_size_ = NumElements(shape) / shape[0];
  return s;
}

absl::StatusOr<std::vector<int32_t>> InferenceSession::Predict(const uint8_t* pixels,
                                                               int64_t count) {
  if (count < 0 || (count > 0 && pixels == nullptr)) {
    return absl::InvalidArgumentError("Predict: a negative count or no pixels");
  }
  const int64_t batch = manifest_.eval_batch, n = example_size_;
  Tensor& image = inputs_[image_];
  std::vector<int32_t> out(static_cast<size_t>(count));
  std::vector<TensorRef> in, o;
  for (Tensor& t : inputs_) in.push_back(t.ref());
  for (Tensor& t : outputs_) o.push_back(t.ref());
  for (int64_t start = 0; start < count; start += batch) {
    const int64_t real = std::min(batch, count - start);
    const uint8_t* src = pixels + start * n;
    if (image.type() == ScalarType::kU8) {
      std::memcpy(image.raw(), src, static_cast<size_t>(real * n));
      std::memset(image.data<uint8_t>() + real * n, 0, static_cast<size_t>((batch - real) * n));
    } else {
      float* dst = image.data<float>();
      for (int64_t k = 0; k < batch * n; ++k) {
        dst[k] = k < real * n ? static_cast<float>(src[k]) * (1.0f / 255.0f) : 0.0f;
      }
    }
    KILN_RETURN_IF_ERROR(eval_->Run(in, o));
    std::memcpy(out.data() + start, outputs_[prediction_].raw(),
                static_cast<size_t>(real) * sizeof(int32_t));
  }
  return out;
}

}  // namespace kiln
