// 2-D convolution, NCHW: conv2d and its two backward primitives (the input gradient is a
// convolution of the output gradient with the flipped kernel; the weight gradient is a small
// output over a large reduction), each with its own schedule.
// attrs.ints: conv2d {sh, sw, ph, pw, dh, dw}; conv2d_backward_input adds {H, W} (the input's
// size); conv2d_backward_weight adds {KH, KW}.
#include <algorithm>

#include "dsl/ops/common.h"

namespace kiln {
namespace {

using Halide::Expr;
using Halide::Func;
using Halide::Var;

struct ConvAttrs {
  int64_t sh, sw, ph, pw, dh, dw;
  explicit ConvAttrs(const std::vector<int64_t>& a)
      : sh(a[0]), sw(a[1]), ph(a[2]), pw(a[3]), dh(a[4]), dw(a[5]) {}
};

absl::Status CheckConvAttrs(const Attrs& at, size_t extra) {
  if (at.ints.size() != 6 + extra) {
    return absl::InvalidArgumentError("expected attributes {stride, padding, dilation}");
  }
  if (at.ints[0] < 1 || at.ints[1] < 1 || at.ints[4] < 1 || at.ints[5] < 1 || at.ints[2] < 0 ||
      at.ints[3] < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected stride >= 1, padding >= 0, dilation >= 1, got stride [", at.ints[0],
                     ", ", at.ints[1], "], padding [", at.ints[2], ", ", at.ints[3],
                     "], dilation [", at.ints[4], ", ", at.ints[5], "]"));
  }
  return absl::OkStatus();
}

// Output size of a convolution or pooling window along one axis (floor mode).
int64_t OutSize(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
  return (in + 2 * p - d * (k - 1) - 1) / s + 1;
}

absl::StatusOr<TypeAndShape> InferConv(const std::vector<const Node*>& in, const Attrs& at) {
  KILN_RETURN_IF_ERROR(CheckConvAttrs(at, 0));
  const Shape& x = in[0]->shape;
  const Shape& w = in[1]->shape;
  if (in[0]->dtype != DType::kFloat || in[1]->dtype != DType::kFloat) {
    return absl::InvalidArgumentError("expected float inputs");
  }
  if (x.size() != 4 || w.size() != 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected input [N, C, H, W] and weight [O, C, KH, KW], got ", ShapeString(x),
                     " and ", ShapeString(w)));
  }
  if (x[1] != w[1]) {
    return absl::InvalidArgumentError(
        absl::StrCat("input has ", x[1], " channels, weight ", ShapeString(w), " expects ", w[1]));
  }
  ConvAttrs a(at.ints);
  int64_t oh = OutSize(x[2], w[2], a.sh, a.ph, a.dh), ow = OutSize(x[3], w[3], a.sw, a.pw, a.dw);
  if (oh <= 0 || ow <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("kernel ", ShapeString(w), " does not fit the padded input ", ShapeString(x)));
  }
  return TypeAndShape{DType::kFloat, {x[0], w[0], oh, ow}};
}

// Zero padding as a Func readable at any coordinate; the schedule materializes it so the
// convolution's inner loop reads dense, unconditional memory.
// With `always`, the Func is made even without padding: reads past the input (the weight
// gradient's whole-vector columns) then see zeros instead of asking the producer for more.
Func PadZero(LowerCtx& ctx, const Node& n, const Func& in, const Shape& s, int64_t ph, int64_t pw,
             const std::string& suffix, bool always = false) {
  if (ph == 0 && pw == 0 && !always) return in;
  std::vector<Var> v = ctx.Vars(4);
  Expr y = v[2] - static_cast<int>(ph), x = v[3] - static_cast<int>(pw);
  Expr inside = y >= 0 && y < static_cast<int>(s[2]) && x >= 0 && x < static_cast<int>(s[3]);
  Expr value = ctx.At(in, {v[0], v[1], Halide::clamp(y, 0, static_cast<int>(s[2]) - 1),
                           Halide::clamp(x, 0, static_cast<int>(s[3]) - 1)});
  Func pad = ctx.NewFunc(n, suffix);
  ctx.Define(pad, v, Halide::select(inside, value, Halide::cast(ctx.float_type(), 0)));
  return pad;
}

// Shared schedule of conv2d and conv2d_backward_input, both of shape [N, K, Y, X] computed as
// acc += (padded input) x (weights) over a 3-D reduction: tiles of X (one vector, a divisor of X
// no wider than the native vector) x K-block x Y-rows, the accumulator tile in registers with the
// reduction outside it, the padded input materialized per image, parallel over images.
// Measured 2026-11-28 (2-core Zen 4, batch 64, tutorial CNN conv 20->20 k5 p2): see bench/.
//
// GPU: threads over a tile of (x, y) of one image, each thread holding a register tile of up to
// 4 output channels; blocks over x tiles, y tiles and (channel block, image). The weights the
// block needs (its channels x C x KH x KW) are staged once per block in shared memory when they
// fit in 32 KiB; the padded input is its own kernel.
void ScheduleConvLikeGpu(LowerCtx& ctx, const Node& n, Lowered& l) {
  std::vector<Var> v = ctx.Vars(4);  // n, k, y, x
  const int64_t K = n.shape[1], Y = n.shape[2], X = n.shape[3];
  const int kb = ops::Divisor(K, 4);
  const int tx = GpuExtent(X, 32);
  const int ty = GpuExtent(Y, 256 / tx);
  const auto guard = Halide::TailStrategy::GuardWithIf;
  Var xo("xo"), xi("xi"), yo("yo"), yi("yi"), ko("ko"), ki("ki"), kn("kn");
  Func f = l.f, acc = l.aux[0];
  f.compute_root()
      .split(v[1], ko, ki, kb)
      .tile(v[3], v[2], xo, yo, xi, yi, tx, ty, guard)
      .reorder(ki, xi, yi, xo, yo, ko, v[0])
      .fuse(ko, v[0], kn)
      .gpu_blocks(xo, yo, kn)
      .gpu_threads(xi, yi)
      .unroll(ki);
  acc.compute_at(f, xi).unroll(v[1]);
  const Halide::RDom& r = l.rdoms[0];
  acc.update().reorder(v[3], v[2], v[1], r.z, r.y, r.x).unroll(v[1]);
  const Shape& ws = ctx.input_shape(n, 1);
  // One block's weights: its kb output channels of w [O, C, KH, KW] (conv2d: kb x C x KH x KW;
  // the input gradient's output channels are w's C: O x kb x KH x KW).
  const int64_t slab = kb * NumElements(ws) / ws[n.op == OpKind::kConv2D ? 0 : 1];
  if (slab * 4 <= 32 * 1024) {
    Func wsh = l.aux[1].in(acc);
    std::vector<Var> wv = ctx.Vars(4);
    Var t("t"), to("to"), ti("ti");
    wsh.compute_at(f, xo)
        .fuse(wv[3], wv[2], t)
        .fuse(t, wv[1], t)
        .fuse(t, wv[0], t)
        .split(t, to, ti, tx * ty, guard)
        .gpu_threads(ti);
  }
  if (l.aux.size() > 2) ctx.GpuTileAll(l.aux[2], ctx.input_shape(n, 0));
}

void ScheduleConvLike(LowerCtx& ctx, const Node& n, Lowered& l) {
  if (ctx.gpu()) {
    ScheduleConvLikeGpu(ctx, n, l);
    return;
  }
  const int vs = ctx.vector_width();
  std::vector<Var> v = ctx.Vars(4);  // n, k, y, x
  const int64_t K = n.shape[1], Y = n.shape[2], X = n.shape[3];
  int vx = ops::Divisor(X, vs);
  int kb = ops::Divisor(K, 8);
  int yb = ops::Divisor(Y, std::max(1, 16 / kb));
  if (kb * yb > 16) yb = 1;
  Var xo("xo"), xi("xi"), ko("ko"), ki("ki"), yo("yo"), yi("yi");
  Func f = l.f, acc = l.aux[0];
  f.compute_root()
      .split(v[3], xo, xi, vx)
      .split(v[1], ko, ki, kb)
      .split(v[2], yo, yi, yb)
      .reorder(xi, ki, yi, xo, ko, yo, v[0])
      .vectorize(xi)
      .unroll(ki)
      .unroll(yi)
      .parallel(v[0]);
  acc.compute_at(f, xo).vectorize(v[3]).unroll(v[1]).unroll(v[2]);
  const Halide::RDom& r = l.rdoms[0];
  acc.update().reorder(v[3], v[1], v[2], r.z, r.y, r.x).vectorize(v[3]).unroll(v[1]).unroll(v[2]);
  if (l.aux.size() > 2) {
    Func pad = l.aux[2];
    pad.compute_at(f, v[0]).vectorize(v[3], vs, Halide::TailStrategy::GuardWithIf);
  }
}

// out(n, o, y, x) = sum_{c, ky, kx} xpad(n, c, y*sh + ky*dh, x*sw + kx*dw) * w(o, c, ky, kx)
Lowered LowerConv(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  ConvAttrs a(n.attrs.ints);
  const Shape& xs = ctx.input_shape(n, 0);
  const Shape& ws = ctx.input_shape(n, 1);
  Func xpad = PadZero(ctx, n, in[0], xs, a.ph, a.pw, "pad");
  Halide::RDom r(
      {{0, static_cast<int>(ws[1])}, {0, static_cast<int>(ws[2])}, {0, static_cast<int>(ws[3])}},
      "r");  // c, ky, kx
  std::vector<Var> v = ctx.Vars(4);
  Func acc = ctx.NewFunc(n, "acc");
  ctx.Define(acc, v, Halide::cast(ctx.float_type(), 0));
  std::vector<Var> hv(v.rbegin(), v.rend());
  Expr iy = v[2] * static_cast<int>(a.sh) + r.y * static_cast<int>(a.dh);
  Expr ix = v[3] * static_cast<int>(a.sw) + r.z * static_cast<int>(a.dw);
  acc(hv) += ctx.At(xpad, {v[0], r.x, iy, ix}) * ctx.At(in[1], {v[1], r.x, r.y, r.z});
  Func f = ctx.NewFunc(n);
  ctx.Define(f, v, ctx.At(acc, v));
  Lowered l{f, {acc, in[1]}, {r}};  // the weights: staged in GPU shared memory
  if (a.ph || a.pw) l.aux.push_back(xpad);
  return l;
}

// dx = conv2d_backward_input(dy, w), dw = conv2d_backward_weight(x, dy)
std::vector<Value> ConvVjp(const VjpArgs& a) {
  Graph* g = a.dy.graph();
  Attrs bi = a.attrs;
  bi.ints.push_back(a.x[0].shape()[2]);
  bi.ints.push_back(a.x[0].shape()[3]);
  Attrs bw = a.attrs;
  bw.ints.push_back(a.x[1].shape()[2]);
  bw.ints.push_back(a.x[1].shape()[3]);
  return {g->AddNode(OpKind::kConv2DBackwardInput, {a.dy, a.x[1]}, bi),
          g->AddNode(OpKind::kConv2DBackwardWeight, {a.x[0], a.dy}, bw)};
}

absl::StatusOr<TypeAndShape> InferConvBackwardInput(const std::vector<const Node*>& in,
                                                    const Attrs& at) {
  KILN_RETURN_IF_ERROR(CheckConvAttrs(at, 2));
  const Shape& dy = in[0]->shape;
  const Shape& w = in[1]->shape;
  if (dy.size() != 4 || w.size() != 4 || dy[1] != w[0]) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected dy [N, O, OH, OW] and w [O, C, KH, KW], got ", ShapeString(dy),
                     " and ", ShapeString(w)));
  }
  ConvAttrs a(at.ints);
  int64_t h = at.ints[6], wd = at.ints[7];
  if (OutSize(h, w[2], a.sh, a.ph, a.dh) != dy[2] || OutSize(wd, w[3], a.sw, a.pw, a.dw) != dy[3]) {
    return absl::InvalidArgumentError("input size does not match the output gradient");
  }
  return TypeAndShape{DType::kFloat, {dy[0], w[1], h, wd}};
}

// dx(n, c, iy, ix) = sum_{o, ky, kx} dy(n, o, oy, ox) * w(o, c, ky, kx), where
// oy = (iy + ph - ky*dh) / sh when that divides exactly and lies in [0, OH) (same for x).
Lowered LowerConvBackwardInput(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  ConvAttrs a(n.attrs.ints);
  const Shape& dys = ctx.input_shape(n, 0);
  const Shape& ws = ctx.input_shape(n, 1);
  // dy with zeros outside its extent, materialized per image.
  const int64_t pad_y = (ws[2] - 1) * a.dh, pad_x = (ws[3] - 1) * a.dw;
  Func dypad = PadZero(ctx, n, in[0], dys, pad_y, pad_x, "dypad");
  Halide::RDom r(
      {{0, static_cast<int>(ws[0])}, {0, static_cast<int>(ws[2])}, {0, static_cast<int>(ws[3])}},
      "r");  // o, ky, kx
  std::vector<Var> v = ctx.Vars(4);
  Func acc = ctx.NewFunc(n, "acc");
  ctx.Define(acc, v, Halide::cast(ctx.float_type(), 0));
  std::vector<Var> hv(v.rbegin(), v.rend());
  Expr ty = v[2] + static_cast<int>(a.ph) - r.y * static_cast<int>(a.dh);
  Expr tx = v[3] + static_cast<int>(a.pw) - r.z * static_cast<int>(a.dw);
  Expr oy = a.sh == 1 ? ty : ty / static_cast<int>(a.sh);
  Expr ox = a.sw == 1 ? tx : tx / static_cast<int>(a.sw);
  // dypad is shifted by (pad_y, pad_x) so every oy in [-pad_y, OH) reads a defined zero.
  Expr term =
      ctx.At(dypad, {v[0], r.x, oy + static_cast<int>(pad_y), ox + static_cast<int>(pad_x)}) *
      ctx.At(in[1], {r.x, v[1], r.y, r.z});
  Expr ok = Halide::Internal::const_true();
  if (a.sh > 1) ok = ok && (ty % static_cast<int>(a.sh) == 0);
  if (a.sw > 1) ok = ok && (tx % static_cast<int>(a.sw) == 0);
  if (a.sh > 1 || a.sw > 1) term = Halide::select(ok, term, Halide::cast(ctx.float_type(), 0));
  acc(hv) += term;
  Func f = ctx.NewFunc(n);
  ctx.Define(f, v, ctx.At(acc, v));
  Lowered l{f, {acc, in[1]}, {r}};  // the weights: staged in GPU shared memory
  if (pad_y || pad_x) l.aux.push_back(dypad);
  return l;
}

absl::StatusOr<TypeAndShape> InferConvBackwardWeight(const std::vector<const Node*>& in,
                                                     const Attrs& at) {
  KILN_RETURN_IF_ERROR(CheckConvAttrs(at, 2));
  const Shape& x = in[0]->shape;
  const Shape& dy = in[1]->shape;
  if (x.size() != 4 || dy.size() != 4 || x[0] != dy[0]) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected x [N, C, H, W] and dy [N, O, OH, OW], got ", ShapeString(x), " and ",
                     ShapeString(dy)));
  }
  ConvAttrs a(at.ints);
  int64_t kh = at.ints[6], kw = at.ints[7];
  if (OutSize(x[2], kh, a.sh, a.ph, a.dh) != dy[2] ||
      OutSize(x[3], kw, a.sw, a.pw, a.dw) != dy[3]) {
    return absl::InvalidArgumentError("kernel size does not match the output gradient");
  }
  return TypeAndShape{DType::kFloat, {dy[1], x[1], kh, kw}};
}

// Output columns of the weight gradient's partial sums: OW rounded up to whole vectors (dy is
// zero-padded there), so every load and accumulator is a full, aligned vector.
int64_t PaddedColumns(int64_t ow, int vs) { return (ow + vs - 1) / vs * vs; }

// dw(o, c, ky, kx) = sum_{n, oy, ox} dy(n, o, oy, ox) * xpad(n, c, oy*sh + ky*dh, ox*sw + kx*dw),
// as a fixed split (deterministic for any thread count): part(o, c, ky, kx, ox) sums over
// (n, oy) with ox a vector lane (OW padded to whole vectors with zeros of dy); dw sums part
// over ox. part_acc is part's accumulator tile (see the schedule).
Lowered LowerConvBackwardWeight(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  ConvAttrs a(n.attrs.ints);
  const Shape& xs = ctx.input_shape(n, 0);
  const Shape& dys = ctx.input_shape(n, 1);
  const int owp = static_cast<int>(PaddedColumns(dys[3], ctx.vector_width()));
  Func xpad = PadZero(ctx, n, in[0], xs, a.ph, a.pw, "pad", /*always=*/owp != dys[3]);
  std::vector<Var> v4 = ctx.Vars(4);
  Func dypad = ctx.NewFunc(n, "dypad");
  ctx.Define(dypad, v4,
             Halide::select(v4[3] < static_cast<int>(dys[3]),
                            ctx.At(in[1], {v4[0], v4[1], v4[2],
                                           Halide::min(v4[3], static_cast<int>(dys[3]) - 1)}),
                            Halide::cast(ctx.float_type(), 0)));
  Halide::RDom r({{0, static_cast<int>(dys[2])}, {0, static_cast<int>(dys[0])}}, "r");  // oy, n
  std::vector<Var> v5 = ctx.Vars(5);  // o, c, ky, kx, ox
  std::vector<Var> hv5(v5.rbegin(), v5.rend());
  Func acc = ctx.NewFunc(n, "part_acc");
  ctx.Define(acc, v5, Halide::cast(ctx.float_type(), 0));
  Expr iy = r.x * static_cast<int>(a.sh) + v5[2] * static_cast<int>(a.dh);
  Expr ix = v5[4] * static_cast<int>(a.sw) + v5[3] * static_cast<int>(a.dw);
  acc(hv5) += ctx.At(dypad, {r.y, v5[0], r.x, v5[4]}) * ctx.At(xpad, {r.y, v5[1], iy, ix});
  Func part = ctx.NewFunc(n, "part");
  ctx.Define(part, v5, ctx.At(acc, v5));
  Halide::RDom rx(0, owp, "rx");
  std::vector<Var> v = ctx.Vars(4);
  Func f = ctx.NewFunc(n);
  ctx.Define(f, v, Halide::cast(ctx.float_type(), 0));
  std::vector<Var> hv(v.rbegin(), v.rend());
  f(hv) += ctx.At(part, {v[0], v[1], v[2], v[3], rx.x});
  Lowered l{f, {part, acc, dypad}, {r, rx}};
  if (a.ph || a.pw || owp != dys[3]) l.aux.push_back(xpad);
  return l;
}

// A register-blocked reduction: part is computed in tiles of (ob output channels) x (all KW taps)
// x (OW padded to whole vectors), the tile's accumulators (part_acc, at most ~24 vectors) held in
// registers while (n, oy) stream through; per step, ob dy vectors (aligned) and KW shifted xpad
// vectors feed ob * KW FMAs. Parallel over (output-channel block, input channel).
// Measured 2026-11-28 (2-core Xeon with AVX-512, tutorial CNN, batch 64, kiln_bench one epoch):
// the whole training step went from 4,274 to 5,220 images/s when this replaced partial sums
// accumulating in L1 memory (one load and one store per FMA); conv2's weight gradient now runs at
// about 160-190 GFLOP/s in the profile. Folding the lane reduction into the tile measured slower
// (7.3-7.9k vs 8.1-8.7k images/s with the later changes) and was reverted.
//
// GPU: the partial sums part_acc(o, c, ky, kx, ox) are one thread each (ox and kx across the
// threads of a block, the rest across blocks), every thread summing over (n, oy) in registers;
// a second kernel sums the ox columns (the rfactor-and-second-kernel form of a small-output
// reduction).
void ScheduleConvBackwardWeightGpu(LowerCtx& ctx, const Node& n, Lowered& l) {
  const Shape& dys = ctx.input_shape(n, 1);
  Shape part = n.shape;
  part.push_back(PaddedColumns(dys[3], ctx.vector_width()));
  ctx.GpuTileAll(l.aux[1], part);  // part_acc; part itself is inlined into the sum
  ctx.GpuTileAll(l.aux[2], dys);   // dypad
  ctx.GpuTileAll(l.f, n.shape);
  if (l.aux.size() > 3) ctx.GpuTileAll(l.aux[3], ctx.input_shape(n, 0));  // xpad
}

void ScheduleConvBackwardWeight(LowerCtx& ctx, const Node& n, Lowered& l) {
  if (ctx.gpu()) {
    ScheduleConvBackwardWeightGpu(ctx, n, l);
    return;
  }
  const int vs = ctx.vector_width();
  std::vector<Var> v4 = ctx.Vars(4);
  std::vector<Var> v5 = ctx.Vars(5);  // o, c, ky, kx, ox
  const int64_t O = n.shape[0], KW = n.shape[3];
  const int nvec = static_cast<int>(PaddedColumns(ctx.input_shape(n, 1)[3], vs) / vs);
  int ob = 1;
  for (int d = 1; d <= O; ++d) {
    if (O % d == 0 && d * KW * nvec <= 24) ob = d;
  }
  Func f = l.f, part = l.aux[0], acc = l.aux[1], dypad = l.aux[2];
  Var oo("oo"), oi("oi"), xo("xo"), xi("xi"), t("t");
  dypad.compute_root().parallel(v4[0]).vectorize(v4[3], vs);
  part.compute_root()
      .split(v5[0], oo, oi, ob)
      .split(v5[4], xo, xi, vs)
      .reorder(xi, xo, v5[3], oi, v5[2], v5[1], oo)
      .vectorize(xi)
      .unroll(xo)
      .unroll(v5[3])
      .unroll(oi)
      .fuse(v5[1], oo, t)
      .parallel(t);
  acc.compute_at(part, v5[2]);
  acc.split(v5[4], xo, xi, vs).vectorize(xi).unroll(xo).unroll(v5[3]).unroll(v5[0]);
  const Halide::RDom& r = l.rdoms[0];
  acc.update()
      .split(v5[4], xo, xi, vs)
      .reorder(xi, xo, v5[3], v5[0], r.x, r.y)
      .vectorize(xi)
      .unroll(xo)
      .unroll(v5[3])
      .unroll(v5[0]);
  f.compute_root();
  f.update().parallel(v4[0]);
  if (l.aux.size() > 3) {
    l.aux[3].compute_root().parallel(v4[0]).vectorize(v4[3], vs, Halide::TailStrategy::GuardWithIf);
  }
}

}  // namespace

extern const OpDef kConv2DOp = {"conv2d",  Pattern::kComplex, 2, InferConv, ConvVjp,
                                LowerConv, ScheduleConvLike};
extern const OpDef kConv2DBackwardInputOp = {
    "conv2d_backward_input", Pattern::kComplex, 2, InferConvBackwardInput, nullptr,
    LowerConvBackwardInput,  ScheduleConvLike};
extern const OpDef kConv2DBackwardWeightOp = {
    "conv2d_backward_weight", Pattern::kComplex,         2, InferConvBackwardWeight, nullptr,
    LowerConvBackwardWeight,  ScheduleConvBackwardWeight};

}  // namespace kiln
