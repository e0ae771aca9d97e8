// Source ops: fed inputs, trainable parameters (both provided to the lowering by the compiler as
// pipeline arguments) and constants.
#include "dsl/ops/common.h"

namespace kiln {
namespace {

absl::StatusOr<TypeAndShape> InferSource(const std::vector<const Node*>&, const Attrs&) {
  // Inputs and parameters are created by Graph::Input/Parameter with their shape; never inferred.
  return absl::InternalError("source nodes are created by Graph::Input and Graph::Parameter");
}

Lowered LowerSource(LowerCtx& ctx, const Node& n, const std::vector<Halide::Func>&) {
  return {ctx.Source(n)};
}

// constant: ConstantAttrs, the fill value and the shape.
absl::StatusOr<TypeAndShape> InferConstant(const std::vector<const Node*>&, const Attrs& at) {
  KILN_ASSIGN_OR_RETURN(const ConstantAttrs* a, ops::AttrsAs<ConstantAttrs>(at));
  for (int64_t d : a->shape) {
    if (d <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("expected positive dimensions, got ", ShapeString(a->shape)));
    }
  }
  return TypeAndShape{DType::kFloat, a->shape};
}

Lowered LowerConstant(LowerCtx& ctx, const Node& n, const std::vector<Halide::Func>&) {
  Halide::Func f = ctx.NewFunc(n);
  ctx.Define(f, ctx.Vars(static_cast<int>(n.shape.size())),
             Halide::cast(ctx.float_type(), Halide::Expr(n.attrs.Get<ConstantAttrs>().value)));
  return {f};
}

}  // namespace

extern const OpDef kInputOp = {"input", Pattern::kSource, 0,      InferSource,
                               nullptr, LowerSource,      nullptr};
extern const OpDef kParameterOp = {"parameter", Pattern::kSource, 0,      InferSource,
                                   nullptr,     LowerSource,      nullptr};
extern const OpDef kBufferOp = {"buffer", Pattern::kSource, 0,      InferSource,
                                nullptr,  LowerSource,      nullptr};
extern const OpDef kConstantOp = {"constant", Pattern::kElementwise, 0,      InferConstant,
                                  nullptr,    LowerConstant,         nullptr};

}  // namespace kiln
