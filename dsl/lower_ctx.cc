#include <algorithm>
#include <cctype>

#include "absl/strings/str_cat.h"
#include "dsl/op_def.h"

namespace kiln {

LowerCtx::LowerCtx(Halide::Type float_type, Halide::Target target)
    : float_type_(float_type),
      target_(target),
      vector_width_(std::max(1, target.natural_vector_size(float_type))) {}

Halide::Type LowerCtx::TypeOf(DType t) const {
  switch (t) {
    case DType::kFloat:
      return float_type_;
    case DType::kInt32:
      return Halide::Int(32);
    case DType::kUInt8:
      return Halide::UInt(8);
  }
  return float_type_;
}

std::vector<Halide::Var> LowerCtx::Vars(int rank) const {
  std::vector<Halide::Var> v;
  for (int i = 0; i < rank; ++i) v.emplace_back(absl::StrCat("d", rank - 1 - i));
  return v;
}

Halide::Expr LowerCtx::At(const Halide::Func& f, const std::vector<Halide::Expr>& logical) const {
  std::vector<Halide::Expr> h(logical.rbegin(), logical.rend());
  return f(h);
}

Halide::Expr LowerCtx::At(const Halide::Func& f, const std::vector<Halide::Var>& logical) const {
  return At(f, std::vector<Halide::Expr>(logical.begin(), logical.end()));
}

void LowerCtx::Define(Halide::Func& f, const std::vector<Halide::Var>& logical,
                      const Halide::Expr& e) const {
  Ref(f, logical) = e;
}

Halide::FuncRef LowerCtx::Ref(const Halide::Func& f,
                              const std::vector<Halide::Var>& logical) const {
  return f(std::vector<Halide::Var>(logical.rbegin(), logical.rend()));
}

Halide::RDom LowerCtx::ReductionDomain(const Shape& logical_extents,
                                       const std::string& name) const {
  std::vector<Halide::Range> ranges;
  for (auto it = logical_extents.rbegin(); it != logical_extents.rend(); ++it) {
    ranges.emplace_back(0, static_cast<int>(*it));
  }
  return Halide::RDom(ranges, name);
}

std::vector<Halide::RVar> LowerCtx::RVars(const Halide::RDom& r) const {
  std::vector<Halide::RVar> v;
  for (int i = r.dimensions() - 1; i >= 0; --i) v.push_back(r[i]);
  return v;
}

Halide::Expr LowerCtx::Broadcast(const Halide::Func& f, const Shape& in,
                                 const std::vector<Halide::Var>& out) const {
  std::vector<Halide::Expr> idx;
  size_t offset = out.size() - in.size();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == 1) {
      idx.push_back(0);
    } else {
      idx.push_back(out[offset + i]);
    }
  }
  return At(f, idx);
}

Halide::Expr LowerCtx::Step() const { return step_ ? (*step_)() : Halide::cast(float_type_, 0); }

Halide::Expr LowerCtx::ExampleOffset() const {
  return example_offset_ ? (*example_offset_)() : Halide::cast(float_type_, 0);
}

Halide::Func LowerCtx::NewFunc(const Node& n, const std::string& suffix) const {
  std::string name = absl::StrCat(n.name, suffix.empty() ? "" : "_", suffix);
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return Halide::Func(absl::StrCat(name, "_n", n.id));
}

int GpuExtent(int64_t extent, int cap) {
  int p = 1;
  while (p * 2 <= cap && p < extent) p *= 2;
  return p;
}

namespace {

// GpuTile over explicit dimensions, innermost first, with their extents: the two innermost over
// threads (up to 32 x 8, 256 along a single one), every outer one fused into the third block index.
void TileOverThreads(Halide::Stage s, const std::vector<Halide::Var>& inner_first,
                     const std::vector<int64_t>& extents) {
  const auto guard = Halide::TailStrategy::GuardWithIf;
  Halide::Var bx("gbx"), tx("gtx"), by("gby"), ty("gty");
  const size_t n = inner_first.size();
  if (n == 1) {
    s.gpu_tile(inner_first[0], bx, tx, GpuExtent(extents[0], 256), guard);
    return;
  }
  const int tw = GpuExtent(extents[0], 32);
  const int th = GpuExtent(extents[1], 256 / tw);
  s.gpu_tile(inner_first[0], inner_first[1], bx, by, tx, ty, tw, th, guard);
  if (n >= 3) {
    Halide::Var outer = inner_first[2];
    for (size_t j = 3; j < n; ++j) {
      Halide::Var fused(absl::StrCat("gbz", n - 1 - j));
      s.fuse(outer, inner_first[j], fused);
      outer = fused;
    }
    s.gpu_blocks(outer);
  }
}

}  // namespace

void LowerCtx::GpuTile(Halide::Stage s, const Shape& shape) const {
  const int rank = static_cast<int>(shape.size());
  if (rank == 0) {
    s.gpu_single_thread();
    return;
  }
  const std::vector<Halide::Var> v = Vars(rank);
  TileOverThreads(s, std::vector<Halide::Var>(v.rbegin(), v.rend()),
                  std::vector<int64_t>(shape.rbegin(), shape.rend()));
}

void LowerCtx::GpuTileAll(Halide::Func f, const Shape& shape) const {
  if (f.num_update_definitions() > 0 && !shape.empty()) {
    // A reduction: one kernel over a wrapper, each thread computing its element's initial value
    // and every update in a register (instead of a kernel per stage, the accumulator going
    // through global memory at every step of the reduction).
    Halide::Func w = f.in();
    w.compute_root();
    GpuTile(w, shape);
    f.compute_at(w, Halide::Var("gtx"));
    return;
  }
  f.compute_root();
  GpuTile(f, shape);
  for (int i = 0; i < f.num_update_definitions(); ++i) GpuTile(f.update(i), shape);
}

Halide::RVar LowerCtx::GpuSplitReduction(Halide::Func f, const Shape& shape, Halide::RVar r,
                                         int64_t r_extent, int chunk) const {
  Halide::RVar ro(r.name() + "_chunk"), ri(r.name() + "_in");
  Halide::Var u("chunk");
  Halide::Func part = f.update().split(r, ro, ri, chunk).rfactor(ro, u);
  Halide::Func w = part.in();
  w.compute_root();
  // w's arguments innermost first: f's (its logical axes reversed), then the chunk index.
  std::vector<int64_t> extents(shape.rbegin(), shape.rend());
  extents.push_back((r_extent + chunk - 1) / chunk);
  TileOverThreads(w, w.args(), extents);
  part.compute_at(w, Halide::Var("gtx"));
  return ro;
}

void LowerCtx::StoreAs(Halide::Func f, int rank, Layout layout) const {
  if (layout == Layout::kRowMajor || rank < 2) return;  // Halide's default order is row-major
  std::vector<Halide::Var> v = Vars(rank);
  std::vector<Halide::Var> order = {v[0]};  // innermost first: the batch, then the rest
  for (int i = rank - 1; i >= 1; --i) order.push_back(v[i]);
  f.reorder_storage(order);
}

int LowerCtx::BatchLanes(int64_t batch) const {
  int lanes = 1;
  while (lanes * 2 <= vector_width_ && batch % (lanes * 2) == 0) lanes *= 2;
  return lanes;
}

int LowerCtx::AccumulatorRegisters() const {
  return target_.has_feature(Halide::Target::AVX512) ? 24 : 12;
}

int64_t LowerCtx::RowsPerTask(int64_t rows, int64_t work) {
  if (rows < 2 || work < (1 << 16)) return 0;
  return std::max<int64_t>(1, std::min<int64_t>(rows / 2, (int64_t{1} << 15) / (work / rows)));
}

void LowerCtx::ScheduleMaterialized(Halide::Func f, const Shape& shape, int64_t work_per_element,
                                    Layout layout) const {
  if (gpu()) {
    GpuTileAll(f, shape);
    return;
  }
  f.compute_root();
  int rank = static_cast<int>(shape.size());
  std::vector<Halide::Var> v = Vars(rank);  // logical order; v.back() is innermost
  if (layout == Layout::kBatchInner && rank >= 2) {
    // Loops in storage order (the batch innermost, as vectors), parallel over the outermost
    // stored axis (channels) when the work is worth the threads.
    StoreAs(f, rank, layout);
    const int lanes = BatchLanes(shape[0]);
    const bool parallel = shape[1] >= 2 && NumElements(shape) * work_per_element >= (1 << 16);
    auto schedule = [&](Halide::Stage s) {
      std::vector<Halide::VarOrRVar> order = {v[0]};
      for (int i = rank - 1; i >= 1; --i) order.push_back(v[i]);
      s.reorder(order);
      if (lanes > 1) s.vectorize(v[0], lanes);
      if (parallel) s.parallel(v[1]);
    };
    schedule(f);
    for (int i = 0; i < f.num_update_definitions(); ++i) schedule(f.update(i));
    return;
  }
  // Trailing axes of extent 1 (a [784, 1] weight) leave the axis before them contiguous: that
  // one is vectorized (a scalar loop of 784 otherwise, which only LLVM's loop vectorizer, off in
  // Kiln's CPU targets (compiler/target.cc), would have turned into vectors; the linear model's
  // step trained at 4.7M images/s without this and 6.8-7.0M with it, 2026-12-04).
  int inner_axis = rank - 1;
  while (inner_axis > 0 && shape[static_cast<size_t>(inner_axis)] == 1) --inner_axis;
  auto schedule = [&](Halide::Stage s) {
    if (rank == 0) return;
    int64_t inner = shape[static_cast<size_t>(inner_axis)];
    if (inner >= vector_width_) {
      // Halide 14 drops the last element of a Tuple's update (an argmax) vectorized with
      // GuardWithIf over exactly one more element than the vector width (9 rows at 8 lanes, 17
      // at 16: seen for every width from 4 to 16 and no other extent up to 5 widths): such an
      // extent takes half-width vectors, three of them.
      const int lanes = inner == vector_width_ + 1 ? vector_width_ / 2 : vector_width_;
      s.vectorize(v[static_cast<size_t>(inner_axis)], lanes, Halide::TailStrategy::GuardWithIf);
    }
    if (inner_axis == 0 && rank >= 2) return;  // the outer axis is the vectorized one
    // Parallel tasks should be worth a thread wake-up (tens of microseconds): rows of the
    // outermost axis are grouped into tasks of at least 2^15 work units. One task per row made
    // the evaluation step's pixel normalization ([1000, 784]) 1000 tasks of ~0.1 us each: 1.1 ms
    // instead of 0.1 ms (2026-11-28, 2 threads).
    const int64_t per = std::max<int64_t>(1, work_per_element);
    const int64_t rows = rank >= 2 ? RowsPerTask(shape.front(), NumElements(shape) * per) : 0;
    if (rows > 0) {
      if (rows > 1) {
        // The outer loop keeps the axis' name: compute_with (fused optimizer outputs) refers to it.
        Halide::Var i;
        s.split(v.front(), v.front(), i, static_cast<int>(rows), Halide::TailStrategy::GuardWithIf)
            .parallel(v.front());
      } else {
        s.parallel(v.front());
      }
    }
  };
  schedule(f);
  for (int i = 0; i < f.num_update_definitions(); ++i) schedule(f.update(i));
}

}  // namespace kiln
