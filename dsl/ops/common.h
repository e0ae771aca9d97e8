// Helpers shared by the op definition files (shape rules and lowering snippets).
#pragma once

#include <vector>

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

// The sum of term(0) .. term(lanes - 1) as a fixed pairwise tree, in strict float: the batch
// lanes' partial sums of a batch-inner reduction (compiler/layout.h). The tree keeps a 16-term
// sum 4 additions deep instead of a 16-long dependent chain; strict, because with fast math LLVM
// reassociated the chain differently in two pipelines holding the same stmt (the tutorial CNN with
// AdamW, one pipeline against a two-phase step: a bias gradient 1 ulp apart, 2026-12-03).
template <typename Term>
Halide::Expr LaneTreeSum(int lanes, const Term& term) {
  std::vector<Halide::Expr> level;
  for (int k = 0; k < lanes; ++k) level.push_back(term(k));
  while (level.size() > 1) {
    std::vector<Halide::Expr> next;
    for (size_t k = 0; k + 1 < level.size(); k += 2) next.push_back(level[k] + level[k + 1]);
    if (level.size() % 2) next.push_back(level.back());
    level = std::move(next);
  }
  return Halide::strict_float(level.front());
}

}  // namespace kiln::ops
