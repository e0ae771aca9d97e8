// Helpers shared by the op definition files (shape rules and lowering snippets).
#pragma once

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status.h"
#include "dsl/api.h"
#include "dsl/op_def.h"

namespace kiln::ops {

inline absl::Status Expect(bool cond, const std::string& what) {
  return cond ? absl::OkStatus() : absl::InvalidArgumentError(what);
}

// NumPy broadcasting of two shapes.
absl::StatusOr<Shape> BroadcastShapes(const Shape& a, const Shape& b);

// Validates reduction axes (sorted, unique, in range) and returns the output shape.
absl::StatusOr<Shape> ReducedShape(const Shape& in, const std::vector<int64_t>& axes,
                                   bool keepdims);

// The op's typed attributes, or InvalidArgument naming the struct expected (a node added through
// Graph::AddNode with attributes of another op). For shape rules; later code uses attrs.Get<T>().
template <typename T>
absl::StatusOr<const T*> AttrsAs(const Attrs& at) {
  if (const T* a = at.Find<T>()) return a;
  return absl::InvalidArgumentError(
      absl::StrCat("expected attributes ", T::kName, ", got ", at.TypeName()));
}

// Input coordinates of a reduction: reduced axes read the reduction variables (`r`, in logical
// order, one per reduced axis), the others the output's Vars.
std::vector<Halide::Expr> ReductionIndex(const Shape& in, const ReduceAttrs& a,
                                         const std::vector<Halide::Var>& out,
                                         const std::vector<Halide::RVar>& r);
// An RDom over the reduced axes of `in`, the innermost reduced axis the innermost loop.
Halide::RDom ReductionDomain(const LowerCtx& ctx, const Shape& in, const std::vector<int64_t>& axes,
                             const std::string& name);

// Largest divisor of `extent` not above `limit` (tiles that need no tail), at least 1.
inline int Divisor(int64_t extent, int64_t limit) {
  for (int64_t d = extent < limit ? extent : limit; d > 1; --d) {
    if (extent % d == 0) return static_cast<int>(d);
  }
  return 1;
}

}  // namespace kiln::ops
