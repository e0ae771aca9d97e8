// matmul: [..., M, K] x [..., K, N] -> [..., M, N] over equal leading (batch) axes, a primitive
// because its schedule is where the speed is. A transposed operand (attention's Q K^T) is a
// Transpose view the lowering inlines: the matmul reads it in place.
#include <algorithm>

#include "dsl/ops/common.h"

namespace kiln {
namespace {

using Halide::Func;
using Halide::Var;

absl::StatusOr<TypeAndShape> InferMatMul(const std::vector<const Node*>& in, const Attrs&) {
  const Shape& a = in[0]->shape;
  const Shape& b = in[1]->shape;
  if (in[0]->dtype != DType::kFloat || in[1]->dtype != DType::kFloat) {
    return absl::InvalidArgumentError("expected float inputs");
  }
  if (a.size() < 2 || a.size() != b.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected [..., M, K] x [..., K, N] of the same rank >= 2, got ",
                     ShapeString(a), " x ", ShapeString(b)));
  }
  const size_t r = a.size();
  for (size_t i = 0; i + 2 < r; ++i) {
    if (a[i] != b[i]) {
      return absl::InvalidArgumentError(
          absl::StrCat("batch axis ", i,
                       " differs: expected [..., M, K] x [..., K, N] with equal leading axes, "
                       "got ",
                       ShapeString(a), " x ", ShapeString(b)));
    }
  }
  if (a[r - 1] != b[r - 2]) {
    return absl::InvalidArgumentError(
        absl::StrCat("inner dimensions differ: expected [..., M, K] x [..., K, N], got ",
                     ShapeString(a), " x ", ShapeString(b)));
  }
  Shape out(a.begin(), a.end() - 1);
  out.push_back(b[r - 1]);
  return TypeAndShape{DType::kFloat, out};
}

// C = A B  =>  dA = dC B^T,  dB = A^T dC (per batch)
std::vector<Value> MatMulVjp(const VjpArgs& a) {
  return {MatMul(a.dy, TransposeLast2(a.x[1])), MatMul(TransposeLast2(a.x[0]), a.dy)};
}

// acc(..., m, n) = sum_k A(..., m, k) B(..., k, n), computed per register tile of the output
// ("acc").
Lowered LowerMatMul(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  const int r = static_cast<int>(n.shape.size());
  int64_t k_extent = ctx.input_shape(n, 0)[r - 1];
  std::vector<Var> v = ctx.Vars(r);  // {batch..., m, n}
  Halide::RDom k(0, static_cast<int>(k_extent), "k");
  Func acc = ctx.NewFunc(n, "acc");
  ctx.Define(acc, v, Halide::cast(ctx.float_type(), 0));
  std::vector<Halide::Expr> ia(v.begin(), v.end()), ib(v.begin(), v.end());
  ia[r - 1] = k.x;
  ib[r - 2] = k.x;
  // A layer's input gradient dy W^T (rank 2, B a transposed weight): B's rows, which the schedule
  // loads as vectors, are columns of W, a gather of one element per lane. On CPUs B is copied
  // into a row-major buffer first (a weight: a few KiB): the ViT's MLP input gradients, [1088, 64]
  // x [64, 128] read in place, ran at 25 GFLOP/s (2026-12-03).
  Func b = in[1];
  const bool copy_b = r == 2 && !ctx.gpu() && ctx.input_op(n, 1) == OpKind::kTranspose;
  if (copy_b) {
    std::vector<Var> w = ctx.Vars(2);
    b = ctx.NewFunc(n, "b");
    ctx.Define(b, w, ctx.At(in[1], w));
  }
  ctx.Ref(acc, v) += ctx.At(in[0], ia) * ctx.At(b, ib);
  Func f = ctx.NewFunc(n);
  ctx.Define(f, v, ctx.At(acc, v));
  Lowered l{f, {{"acc", acc}}, {{"k", k}}};
  if (copy_b) l.helpers.Add("b", b);
  return l;
}

// Register-blocked schedule: the output is split into tiles of tv lanes along the vectorized axis
// x `to` rows along the other; the accumulator tile lives at the tile with the reduction k outside
// the unrolled tile, so each k step is a few broadcasts, loads and FMAs into up to 16 vector
// registers. The vectorized axis is N (contiguous in B and C) unless N is tiny next to M (a
// matrix-vector product such as the tutorial's 784->1 layer). Axes no wider than two vectors are
// vectorized whole (10 logits are one 10-lane vector, not a guarded 16-lane one: guarded tails
// were measured 5x slower on the softmax step), and the row count is a divisor of the extent where
// one exists; a last tile that does not fit shifts inwards. Tiles run in parallel when the product
// pays for a thread wake-up.
//
// GPU: blocks of up to 32 x 8 threads, threads adjacent along N (coalesced loads of B and
// stores of C, one broadcast row of A per warp); each thread holds a register tile of 4 rows of C
// and streams k, so every load of B feeds 4 FMAs.
//
// Batch axes (a batched matmul) stay outermost: fused into one loop, which runs in parallel on a
// CPU (when there are several products and they pay for the threads) and is the third block axis
// on a GPU.

// Fuses the leading (batch) axes of a rank-r output into one loop; false for rank 2.
bool FuseBatch(Func f, const std::vector<Var>& v, Var* fused) {
  const int r = static_cast<int>(v.size());
  if (r <= 2) return false;
  Var b = v[r - 3];
  for (int i = r - 4; i >= 0; --i) {
    Var next(b.name() + "_" + v[i].name());
    f.fuse(b, v[i], next);
    b = next;
  }
  *fused = b;
  return true;
}

void ScheduleMatMulGpu(LowerCtx& ctx, const Node& n, Lowered& l) {
  const int r = static_cast<int>(n.shape.size());
  const int64_t m_ext = n.shape[r - 2], n_ext = n.shape[r - 1];
  std::vector<Var> v = ctx.Vars(r);
  Var m = v[r - 2], nv = v[r - 1];
  const int rows = m_ext >= 16 ? 4 : 1;
  const int tx = GpuExtent(n_ext, 32);
  const int ty = GpuExtent((m_ext + rows - 1) / rows, 256 / tx);
  Var xo("xo"), yo("yo"), xi("xi"), yi("yi"), yt("yt"), yr("yr");
  const auto guard = Halide::TailStrategy::GuardWithIf;
  Func f = l.f, acc = l.helpers.Get("acc");
  Halide::RVar k = l.rdoms.Get("k").x;
  // Few output elements over a long k (a fully connected layer's [1000, 10] over 980 inputs:
  // 4,000 threads, each 980 FMAs in a row, 196 us per batch on an H200, a fifth of the CNN's
  // evaluation): k in chunks of 32 summed in parallel, then the chunks per output element.
  const int64_t* k_ext = Halide::Internal::as_const_int(l.rdoms.Get("k").x.extent());
  if (k_ext != nullptr && *k_ext >= 128 && NumElements(n.shape) / rows < 32768) {
    k = ctx.GpuSplitReduction(acc, n.shape, k, *k_ext, 32);
  }
  f.compute_root()
      .tile(nv, m, xo, yo, xi, yi, tx, ty * rows, guard)
      .split(yi, yt, yr, rows, guard)
      .reorder(yr, xi, yt, xo, yo)
      .gpu_threads(xi, yt)
      .unroll(yr);
  Var batch;
  if (FuseBatch(f, v, &batch)) {
    f.gpu_blocks(xo, yo, batch);
  } else {
    f.gpu_blocks(xo, yo);
  }
  acc.compute_at(f, xi).unroll(m);
  acc.update().reorder(nv, m, k).unroll(m);
}

// A matrix-vector product whose dot products run along rows of A (ScheduleMatMul's first case).
bool RowDotProducts(const LowerCtx& ctx, const Node& n) {
  const int vs = ctx.vector_width();
  const size_t r = n.shape.size();
  const int64_t k_ext = ctx.input_shape(n, 0)[r - 1];
  return r == 2 && n.shape[r - 1] == 1 && k_ext % vs == 0 && k_ext >= 2 * vs &&
         ctx.input_op(n, 0) != OpKind::kTranspose;
}

void TileMatMul(LowerCtx& ctx, const Node& n, Lowered& l, Func target);

void ScheduleMatMul(LowerCtx& ctx, const Node& n, Lowered& l) {
  if (ctx.gpu()) {
    ScheduleMatMulGpu(ctx, n, l);
    return;
  }
  if (!RowDotProducts(ctx, n)) {
    TileMatMul(ctx, n, l, l.f);
    return;
  }
  const int vs = ctx.vector_width();
  const int r = static_cast<int>(n.shape.size());
  const int64_t m_ext = n.shape[r - 2];
  const int64_t k_ext = ctx.input_shape(n, 0)[r - 1];
  std::vector<Var> v = ctx.Vars(r);
  Var m = v[r - 2];
  const auto guard = Halide::TailStrategy::GuardWithIf;
  // A matrix-vector product (the tutorial's 784 -> 1 layer): each row of A is read once, so
  // it is a dot product along K, contiguous in A: vs partial sums per row (rfactor), added
  // once at the end. Vectorizing along M instead gathers A with a stride of K (2026-12-02:
  // linear evaluation 1000 x 784 went from 0.5 to 0.06 ms per batch). Not for a transposed A
  // (the weight gradient X^T dy), whose K is the strided axis.
  Func f = l.f, acc = l.helpers.Get("acc");
  const Halide::RVar k = l.rdoms.Get("k").x;
  Halide::RVar ko("ko"), ki("ki");
  Var u("u"), mo("mo"), mi("mi");
  f.compute_root();
  Var at = m;
  if (m_ext >= 64 && 2 * m_ext * k_ext >= (1 << 20)) {
    f.split(m, mo, mi, 32, guard).parallel(mo);
    at = mi;
  }
  // c vectors of partial sums (the largest divisor of K / vs up to 8: 784 = 7 x 7 x 16) are c
  // independent FMA chains, unrolled, so one chain's latency does not bound the product: the
  // linear model's evaluation (1000 x 784 x 1) at 41-44M images/s instead of 31-34M, its
  // training step at 6.7-7.1M instead of 6.1-6.5M (interleaved kiln_bench runs, 2026-12-04).
  int64_t c = 1;
  for (int64_t d = 8; d >= 1 && c == 1; --d) {
    if ((k_ext / vs) % d == 0) c = d;
  }
  // The c vectors are then added lane by lane (a second rfactor), and the vs lanes at the end.
  Halide::RVar kio("kio"), kii("kii");
  Var uo("uo");
  acc.compute_at(f, at);
  Func part = acc.update()
                  .split(k, ko, ki, static_cast<int>(c) * vs)
                  .split(ki, kio, kii, vs)
                  .rfactor({{kio, uo}, {kii, u}});
  part.compute_at(f, at).vectorize(u).unroll(uo);
  part.update().reorder(u, uo, ko).vectorize(u).unroll(uo);
  if (c > 1) {
    Var w("w");
    Func lanes = acc.update().rfactor(kii, w);
    lanes.compute_at(f, at).vectorize(w);
    lanes.update().vectorize(w);
  }
}

// The register-tiled loop nest over the product's output, on `target`: the product's own Func, or
// an elementwise consumer of it (MatMulEpilogue) that then computes each accumulator tile in place.
void TileMatMul(LowerCtx& ctx, const Node& n, Lowered& l, Func target) {
  const int vs = ctx.vector_width();
  const int r = static_cast<int>(n.shape.size());
  const int64_t m_ext = n.shape[r - 2], n_ext = n.shape[r - 1];
  const int64_t k_ext = ctx.input_shape(n, 0)[r - 1];
  const int64_t batch_ext = NumElements(n.shape) / (m_ext * n_ext);
  std::vector<Var> v = ctx.Vars(r);
  Var m = v[r - 2], nv = v[r - 1];
  const auto guard = Halide::TailStrategy::GuardWithIf;
  bool vec_n = n_ext * 4 >= vs || n_ext >= m_ext;
  Var vd = vec_n ? nv : m, od = vec_n ? m : nv;
  int64_t vd_ext = vec_n ? n_ext : m_ext, od_ext = vec_n ? m_ext : n_ext;
  int tv = static_cast<int>(vd_ext <= 2 * vs ? vd_ext : 2 * vs);
  int vectors = (tv + vs - 1) / vs;
  int budget = static_cast<int>(std::min<int64_t>(od_ext, 16 / vectors));
  int to = budget;
  for (int t = budget; t >= 4; --t) {
    if (od_ext % t == 0) {
      to = t;
      break;
    }
  }
  if (Func* b = l.helpers.Find("b")) b->compute_root();  // the transposed weight's copy
  Var vo("vo"), vi("vi"), oo("oo"), oi("oi"), wv("wv");
  Func f = target, acc = l.helpers.Get("acc");
  const Halide::RVar k = l.rdoms.Get("k").x;
  // The last tile along each axis shifts inwards (recomputing a few outputs of the one before,
  // with the same sums) instead of running guarded: every tile is whole, so the loop nest and
  // its unrolled accumulator tile are compiled once. Guarded tails gave each a second, predicated
  // copy: LeNet-5's step (120- and 84-wide layers) compiled in 5.1-5.6 s instead of 5.8-6.7 s,
  // interleaved runs (2026-12-03).
  const auto shift = Halide::TailStrategy::ShiftInwards;
  f.compute_root()
      .split(vd, vo, vi, tv, shift)
      .split(od, oo, oi, to, shift)
      .reorder(vi, oi, vo, oo)
      .split(vi, vi, wv, std::min(tv, vs), shift)
      .vectorize(wv)
      .unroll(vi)
      .unroll(oi);
  const int64_t flops = 2 * batch_ext * m_ext * n_ext * k_ext;
  Var batch;
  if (FuseBatch(f, v, &batch)) {
    if (flops >= (1 << 20) && batch_ext >= 2) f.parallel(batch);
  } else if (flops >= (1 << 20) && (od_ext + to - 1) / to >= 2) {
    f.parallel(oo);
  }
  // Every vector of the tile is unrolled (a tile two vectors wide is two registers per row, not a
  // loop over them), so the tile stays in registers without LLVM's loop passes (compiler/target.cc
  // turns them off): with the loop over the vectors and without those passes the MLP trained at
  // 145k images/s instead of 335k (2026-12-04).
  const int w = std::min(tv, vs);
  Var wo("wo"), wi("wi");
  acc.compute_at(f, vo).split(vd, wo, wi, w, guard).vectorize(wi).unroll(wo).unroll(od, to, guard);
  acc.update()
      .reorder(vd, od, k)
      .split(vd, wo, wi, w, guard)
      .vectorize(wi)
      .unroll(wo)
      .unroll(od, to, guard);
}

// The product computed tile by tile inside its only consumer, a step output (OpDef::epilogue):
// a weight gradient's SGD update reads each accumulator tile from registers instead of the whole
// gradient from memory after the product has stored it.
bool MatMulEpilogue(LowerCtx& ctx, const Node& n, Lowered& l, Func consumer) {
  if (ctx.gpu() || RowDotProducts(ctx, n)) return false;
  TileMatMul(ctx, n, l, consumer);
  return true;
}

// Each element of A is read once per column of the result, each element of B once per row.
int64_t MatMulReads(const Node& n, int i) {
  const size_t r = n.shape.size();
  return n.shape[i == 0 ? r - 1 : r - 2];
}

}  // namespace

extern const OpDef kMatMulOp = {"matmul",      Pattern::kComplex, 2,       InferMatMul, MatMulVjp,
                                LowerMatMul,   ScheduleMatMul,    nullptr, MatMulReads, false,
                                MatMulEpilogue};

}  // namespace kiln
