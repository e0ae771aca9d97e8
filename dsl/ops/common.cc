#include "dsl/ops/common.h"

#include <algorithm>

namespace kiln::ops {

absl::StatusOr<Shape> BroadcastShapes(const Shape& a, const Shape& b) {
  size_t r = std::max(a.size(), b.size());
  Shape out(r);
  for (size_t i = 0; i < r; ++i) {
    int64_t da = i < r - a.size() ? 1 : a[i - (r - a.size())];
    int64_t db = i < r - b.size() ? 1 : b[i - (r - b.size())];
    if (da != db && da != 1 && db != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("shapes ", ShapeString(a), " and ", ShapeString(b),
                       " do not broadcast: expected equal sizes or 1 at axis ", i,
                       " (from the left of the ", "broadcast shape), got ", da, " and ", db));
    }
    out[i] = std::max(da, db);
  }
  return out;
}

absl::StatusOr<Shape> ReducedShape(const Shape& in, const std::vector<int64_t>& axes,
                                   bool keepdims) {
  int rank = static_cast<int>(in.size());
  for (size_t i = 0; i < axes.size(); ++i) {
    if (axes[i] < 0 || axes[i] >= rank) {
      return absl::InvalidArgumentError(absl::StrCat("axis ", axes[i],
                                                     " out of range: expected an axis in [", -rank,
                                                     ", ", rank, ") of a rank-", rank, " input"));
    }
    if (i > 0 && axes[i] <= axes[i - 1]) {
      return absl::InvalidArgumentError("axes must be unique and increasing");
    }
  }
  Shape out;
  for (int i = 0; i < rank; ++i) {
    bool reduced = std::find(axes.begin(), axes.end(), i) != axes.end();
    if (!reduced) {
      out.push_back(in[i]);
    } else if (keepdims) {
      out.push_back(1);
    }
  }
  return out;
}

std::vector<Halide::Expr> ReductionIndex(const Shape& in, const ReduceAttrs& a,
                                         const std::vector<Halide::Var>& out,
                                         const std::vector<Halide::RVar>& r) {
  std::vector<Halide::Expr> idx;
  size_t o = 0, next_r = 0;
  for (int i = 0; i < static_cast<int>(in.size()); ++i) {
    bool reduced = std::find(a.axes.begin(), a.axes.end(), i) != a.axes.end();
    if (reduced) {
      idx.push_back(r[next_r++]);
      if (a.keepdims) ++o;
    } else {
      idx.push_back(out[o++]);
    }
  }
  return idx;
}

Halide::RDom ReductionDomain(const LowerCtx& ctx, const Shape& in, const std::vector<int64_t>& axes,
                             const std::string& name) {
  Shape extents;
  for (int64_t a : axes) extents.push_back(in[a]);
  return ctx.ReductionDomain(extents, name);
}

}  // namespace kiln::ops
