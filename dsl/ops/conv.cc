// 2-D convolution, NCHW: conv2d and its two backward primitives (the input gradient is a
// convolution of the output gradient with the flipped kernel; the weight gradient is a small
// output over a large reduction), each with its own schedule.
// Attributes: Conv2dAttrs; Conv2dBackwardInputAttrs adds the input's size,
// Conv2dBackwardWeightAttrs the kernel's.
#include <algorithm>
#include <optional>

#include "dsl/ops/common.h"

namespace kiln {
namespace {

using Halide::Expr;
using Halide::Func;
using Halide::Var;

using Halide::RVar;

// The attributes as ints, the type Halide's index expressions take.
struct ConvInts {
  int stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
  explicit ConvInts(const Conv2dAttrs& a)
      : stride_h(static_cast<int>(a.stride_h)),
        stride_w(static_cast<int>(a.stride_w)),
        pad_h(static_cast<int>(a.pad_h)),
        pad_w(static_cast<int>(a.pad_w)),
        dilation_h(static_cast<int>(a.dilation_h)),
        dilation_w(static_cast<int>(a.dilation_w)) {}
};

absl::Status CheckConv(const Conv2dAttrs& a) {
  if (a.stride_h < 1 || a.stride_w < 1 || a.dilation_h < 1 || a.dilation_w < 1 || a.pad_h < 0 ||
      a.pad_w < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected stride >= 1, padding >= 0, dilation >= 1, got stride [", a.stride_h,
                     ", ", a.stride_w, "], padding [", a.pad_h, ", ", a.pad_w, "], dilation [",
                     a.dilation_h, ", ", a.dilation_w, "]"));
  }
  return absl::OkStatus();
}

// Output size of a convolution or pooling window along one axis (floor mode).
int64_t OutSize(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
  return (in + 2 * p - d * (k - 1) - 1) / s + 1;
}

// Output rows and columns of convolution `a` over an h x w input with a kh x kw kernel.
Shape OutSpatial(const Conv2dAttrs& a, int64_t h, int64_t w, int64_t kh, int64_t kw) {
  return {OutSize(h, kh, a.stride_h, a.pad_h, a.dilation_h),
          OutSize(w, kw, a.stride_w, a.pad_w, a.dilation_w)};
}

absl::StatusOr<TypeAndShape> InferConv(const std::vector<const Node*>& in, const Attrs& at) {
  KILN_ASSIGN_OR_RETURN(const Conv2dAttrs* a, ops::AttrsAs<Conv2dAttrs>(at));
  KILN_RETURN_IF_ERROR(CheckConv(*a));
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
  Shape out = OutSpatial(*a, x[2], x[3], w[2], w[3]);
  if (out[0] <= 0 || out[1] <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("kernel ", ShapeString(w), " does not fit the padded input ", ShapeString(x)));
  }
  return TypeAndShape{DType::kFloat, {x[0], w[0], out[0], out[1]}};
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

// Whether input `i` of a batch-inner node must be copied batch-inner (a padded copy is made even
// without padding): the input is stored otherwise (a step argument, a reshaped image), so reading
// it in place would load every vector lane from a different row.
bool NeedsBatchInnerCopy(const LowerCtx& ctx, const Node& n, int i) {
  return ctx.layout(n) == Layout::kBatchInner && ctx.input_layout(n, i) != Layout::kBatchInner;
}

// The reduction variables of conv2d and conv2d_backward_input: the summed channel (conv2d: the
// input channel c; the input gradient: the output channel o) and the kernel taps.
struct Taps {
  RVar ch, ky, kx;
};
Taps TapsOf(const LowerCtx& ctx, const Halide::RDom& r) {
  std::vector<RVar> v = ctx.RVars(r);  // logical order: ch, ky, kx
  return {v[0], v[1], v[2]};
}

// Shared schedule of conv2d and conv2d_backward_input, both of shape [N, K, Y, X] computed as
// acc += (padded input) x (weights) over a 3-D reduction: tiles of X (one vector, a divisor of X
// no wider than the native vector) x K-block x Y-rows, the accumulator tile in registers with the
// reduction outside it, the padded input materialized per image, parallel over images.
// Measured 2026-11-28 (2-core Zen 4, batch 64, tutorial CNN conv 20->20 k5 p2): see bench/.
//
// GPU: threads over a tile of (x, y) of one image, each thread holding a register tile of up to
// 16 output channels (the largest divisor of K: 10 for the tutorial CNN's 20); blocks over x
// tiles, y tiles and (channel block, image). The weights the block needs (its channels x C x KH x
// KW) are staged once per block in shared memory when they fit in 32 KiB; the padded input is its
// own kernel. Measured on an H200 (tutorial CNN, Adam, 2026-12-04, two rounds), tiles of 4 / 10 /
// 20 channels: a batch-256 training epoch 0.208-0.210 / 0.198-0.199 / 0.204-0.208 s, evaluation
// at batch 1000 1.03M / 1.11M / 1.19M images/s.
void ScheduleConvLikeGpu(LowerCtx& ctx, const Node& n, Lowered& l) {
  std::vector<Var> v = ctx.Vars(4);  // n, k, y, x
  const int64_t K = n.shape[1], Y = n.shape[2], X = n.shape[3];
  const int kb = ops::Divisor(K, 16);
  const int tx = GpuExtent(X, 32);
  const int ty = GpuExtent(Y, 256 / tx);
  const auto guard = Halide::TailStrategy::GuardWithIf;
  Var xo("xo"), xi("xi"), yo("yo"), yi("yi"), ko("ko"), ki("ki"), kn("kn");
  Func f = l.f, acc = l.helpers.Get("acc");
  const Taps r = TapsOf(ctx, l.rdoms.Get("r"));
  f.compute_root()
      .split(v[1], ko, ki, kb)
      .tile(v[3], v[2], xo, yo, xi, yi, tx, ty, guard)
      .reorder(ki, xi, yi, xo, yo, ko, v[0])
      .fuse(ko, v[0], kn)
      .gpu_blocks(xo, yo, kn)
      .gpu_threads(xi, yi)
      .unroll(ki);
  acc.compute_at(f, xi).unroll(v[1]);
  acc.update().reorder(v[3], v[2], v[1], r.kx, r.ky, r.ch).unroll(v[1]);
  const Shape& ws = ctx.input_shape(n, 1);
  // One block's weights: its kb output channels of w [O, C, KH, KW] (conv2d: kb x C x KH x KW;
  // the input gradient's output channels are w's C: O x kb x KH x KW).
  const int64_t slab = kb * NumElements(ws) / ws[n.op == OpKind::kConv2D ? 0 : 1];
  if (slab * 4 <= 32 * 1024) {
    Func wsh = l.helpers.Get("weights").in(acc);
    std::vector<Var> wv = ctx.Vars(4);
    // The block's own tx x ty threads copy it, tx * ty elements at a time: Halide launches a
    // kernel with the largest extent of each thread axis over its loops, so a 1-D copy over
    // tx * ty threads made blocks of (tx * ty) x ty threads, 2048 or 4096, which CUDA refuses.
    Var t("t"), to("to"), ti("ti"), tix("tix"), tiy("tiy");
    wsh.compute_at(f, xo)
        .fuse(wv[3], wv[2], t)
        .fuse(t, wv[1], t)
        .fuse(t, wv[0], t)
        .split(t, to, ti, tx * ty, guard)
        .split(ti, tiy, tix, tx)
        .gpu_threads(tix, tiy);
  }
  if (Func* pad = l.helpers.Find("pad")) ctx.GpuTileAll(*pad, ctx.input_shape(n, 0));
}

// Batch-inner layout (compiler/layout.h): the output, its accumulator and the padded input keep
// the batch innermost, so one vector is `lanes` images at one (channel, y, x) and every load is a
// whole aligned vector whatever the image width or the channel count. The accumulator tile, nv
// vectors of images x kb output channels (at most AccumulatorRegisters() vectors), stays in
// registers while the taps (ch, ky, kx) stream through, rolled: per tap, nv dense loads of the
// padded input, kb broadcast weights and nv * kb FMAs. Parallel over (image-vector block,
// output-channel block, row), the image blocks outermost, so that a row task reads the padded
// input of nv vectors of images, not of the whole batch (0.9 MB at batch 128, near the 1 MB L2);
// no gain was measured from it at batch 128 (19.9 vs 20.3 ms per step, 2026-12-03), where the
// step is about 2x slower per image than at 64 in every stage, memory-bound ones included.
// Measured (tutorial CNN, SGD, batch 64, 2-core Zen 4 with AVX-512, Halide's profiler, 2026-12-03;
// the machine's FMA ceiling 225 GFLOP/s in the same hour): conv2's forward 1.07 ms per step (235
// GFLOP/s) and input gradient 1.17 ms (215), against 1.52 and 1.57 ms row-major; its weight
// gradient (below) 1.24 ms (202) against 1.40; conv1's weight gradient 0.54 ms (94) against 0.36
// row-major, the one kernel the plan made slower (it streams the 4 MB output gradient from memory).
// The whole step 8.3 -> 6.0 ms. This machine's speed drifted by up to 30% between runs that hour.
void ScheduleConvLikeBatchInner(LowerCtx& ctx, const Node& n, Lowered& l) {
  std::vector<Var> v = ctx.Vars(4);  // n, k, y, x
  const int64_t N = n.shape[0], K = n.shape[1];
  const int lanes = ctx.BatchLanes(N);
  const int budget = ctx.AccumulatorRegisters();
  // The largest tile within the budget, nv at most 4, the larger nv on a tie (AVX-512, batch 64,
  // 20 channels: 4 x 5; AVX2: 2 x 5, where 4 x 2 left FMA latency exposed).
  int nv = 1, kb = ops::Divisor(K, budget);
  for (int v = 2; v <= 4; ++v) {
    if ((N / lanes) % v != 0) continue;
    const int k = ops::Divisor(K, std::max(1, budget / v));
    if (v * k >= nv * kb) nv = v, kb = k;
  }
  Var no("no"), ni("ni"), nvo("nvo"), nvi("nvi"), ko("ko"), ki("ki"), t("t");
  Func f = l.f, acc = l.helpers.Get("acc");
  const Taps r = TapsOf(ctx, l.rdoms.Get("r"));
  ctx.StoreAs(f, 4, Layout::kBatchInner);
  f.compute_root()
      .split(v[0], no, ni, lanes)
      .split(no, nvo, nvi, nv)
      .split(v[1], ko, ki, kb)
      .reorder(ni, nvi, ki, v[3], v[2], ko, nvo)
      .vectorize(ni)
      .unroll(nvi)
      .unroll(ki)
      .fuse(v[2], ko, t)
      .fuse(t, nvo, t)
      .parallel(t);
  ctx.StoreAs(acc, 4, Layout::kBatchInner);
  acc.compute_at(f, v[3]);
  acc.split(v[0], no, ni, lanes).reorder(ni, no, v[1]).vectorize(ni).unroll(no).unroll(v[1]);
  acc.update()
      .split(v[0], no, ni, lanes)
      .reorder(ni, no, v[1], v[2], v[3], r.kx, r.ky, r.ch)
      .vectorize(ni)
      .unroll(no)
      .unroll(v[1]);
  // A 3-wide tap row is unrolled: with LLVM's loop passes off (compiler/target.cc) the rolled
  // loop cost the small ResNet's step 2-4% (2,507 / 2,650 images/s against 2,704 / 2,667 unrolled,
  // interleaved, 2026-12-04). A 5-wide one stays rolled: unrolled, the tutorial CNN's Adam step
  // compiled in 2.18 s instead of 1.54 s and LeNet-5 trained at 49k instead of 58k images/s.
  if (const int64_t* kw = Halide::Internal::as_const_int(r.kx.extent()); kw && *kw <= 3) {
    acc.update().unroll(r.kx);
  }
  if (Func* pad = l.helpers.Find("pad")) {
    ctx.StoreAs(*pad, 4, Layout::kBatchInner);
    pad->compute_root()
        .reorder(v[0], v[3], v[2], v[1])
        .vectorize(v[0], lanes)
        .fuse(v[2], v[1], t)
        .parallel(t);
  }
}

void ScheduleConvLike(LowerCtx& ctx, const Node& n, Lowered& l) {
  if (ctx.gpu()) {
    ScheduleConvLikeGpu(ctx, n, l);
    return;
  }
  if (Func* wpad = l.helpers.Find("wpad")) wpad->compute_root();  // a few KiB
  if (ctx.layout(n) == Layout::kBatchInner) {
    ScheduleConvLikeBatchInner(ctx, n, l);
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
  Func f = l.f, acc = l.helpers.Get("acc");
  const Taps r = TapsOf(ctx, l.rdoms.Get("r"));
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
  acc.update()
      .reorder(v[3], v[1], v[2], r.kx, r.ky, r.ch)
      .vectorize(v[3])
      .unroll(v[1])
      .unroll(v[2]);
  if (Func* pad = l.helpers.Find("pad")) {
    pad->compute_at(f, v[0]).vectorize(v[3], vs, Halide::TailStrategy::GuardWithIf);
  }
}

// The Halide form shared by conv2d and conv2d_backward_input: out = acc, an accumulator over
// the reduction domain r (see Taps) that the shared schedule places; the weights are staged in
// GPU shared memory; `pad` is a padded input, if one was made.
Lowered ConvLike(LowerCtx& ctx, const Node& n, Func acc, Halide::RDom r, Func weights,
                 std::optional<Func> pad) {
  Func f = ctx.NewFunc(n);
  std::vector<Var> v = ctx.Vars(4);
  ctx.Define(f, v, ctx.At(acc, v));
  Lowered l{f, {{"acc", acc}, {"weights", weights}}, {{"r", r}}};
  if (pad) l.helpers.Add("pad", *pad);
  return l;
}

// out(n, o, y, x) = sum_{c, ky, kx} xpad(n, c, y*sh + ky*dh, x*sw + kx*dw) * w(o, c, ky, kx)
Lowered LowerConv(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  const ConvInts a(n.attrs.Get<Conv2dAttrs>());
  const Shape& xs = ctx.input_shape(n, 0);
  const Shape& ws = ctx.input_shape(n, 1);
  const bool copy = NeedsBatchInnerCopy(ctx, n, 0);
  Func xpad = PadZero(ctx, n, in[0], xs, a.pad_h, a.pad_w, "pad", copy);
  Halide::RDom r = ctx.ReductionDomain({ws[1], ws[2], ws[3]}, "r");
  const Taps t = TapsOf(ctx, r);  // ch = c
  std::vector<Var> v = ctx.Vars(4);
  Func acc = ctx.NewFunc(n, "acc");
  ctx.Define(acc, v, Halide::cast(ctx.float_type(), 0));
  Expr iy = v[2] * a.stride_h + t.ky * a.dilation_h;
  Expr ix = v[3] * a.stride_w + t.kx * a.dilation_w;
  ctx.Ref(acc, v) += ctx.At(xpad, {v[0], t.ch, iy, ix}) * ctx.At(in[1], {v[1], t.ch, t.ky, t.kx});
  return ConvLike(ctx, n, acc, r, in[1],
                  a.pad_h || a.pad_w || copy ? std::optional<Func>(xpad) : std::nullopt);
}

// dx = conv2d_backward_input(dy, w), dw = conv2d_backward_weight(x, dy)
std::vector<Value> ConvVjp(const VjpArgs& a) {
  Graph* g = a.dy.graph();
  // Copies: adding the first node may move the graph's nodes (and what these would refer to).
  const Conv2dAttrs c = a.attrs.Get<Conv2dAttrs>();
  const Shape x = a.x[0].shape();
  const Shape w = a.x[1].shape();
  return {g->AddNode(OpKind::kConv2DBackwardInput, {a.dy, a.x[1]},
                     Attrs{Conv2dBackwardInputAttrs{c, x[2], x[3]}}),
          g->AddNode(OpKind::kConv2DBackwardWeight, {a.x[0], a.dy},
                     Attrs{Conv2dBackwardWeightAttrs{c, w[2], w[3]}})};
}

absl::StatusOr<TypeAndShape> InferConvBackwardInput(const std::vector<const Node*>& in,
                                                    const Attrs& at) {
  KILN_ASSIGN_OR_RETURN(const Conv2dBackwardInputAttrs* a,
                        ops::AttrsAs<Conv2dBackwardInputAttrs>(at));
  KILN_RETURN_IF_ERROR(CheckConv(a->conv));
  const Shape& dy = in[0]->shape;
  const Shape& w = in[1]->shape;
  if (dy.size() != 4 || w.size() != 4 || dy[1] != w[0]) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected dy [N, O, OH, OW] and w [O, C, KH, KW], got ", ShapeString(dy),
                     " and ", ShapeString(w)));
  }
  if (OutSpatial(a->conv, a->input_h, a->input_w, w[2], w[3]) != Shape{dy[2], dy[3]}) {
    return absl::InvalidArgumentError("input size does not match the output gradient");
  }
  return TypeAndShape{DType::kFloat, {dy[0], w[1], a->input_h, a->input_w}};
}

// dx(n, c, iy, ix) = sum_{o, ky, kx} dy(n, o, oy, ox) * w(o, c, ky, kx), where
// oy = (iy + ph - ky*dh) / sh when that divides exactly and lies in [0, OH) (same for x).
// One spatial axis of the input gradient: input coordinate i reads dy at
// o = (i + pad - k * dilation) / stride for the taps k where the division is exact.
// The phase form (stride > 1, dilation 1) sums only those taps: with q = i + pad they are
// k = q % stride + stride * j for j in [0, ceil(K / stride)), at o = q / stride - j (taps past K
// read the zero-padded weights). Otherwise every tap is summed and the inexact ones select zero,
// stride^2 times the work for a strided 2-D convolution: the small ResNet's two 3x3 stride-2
// input gradients took 6.9 ms each of its 58 ms step that way (2026-12-03).
// Not for an axis the schedule vectorizes (a row-major x): the taps would differ across lanes.
struct BackwardAxis {
  bool phase;
  int stride, pad, dilation, taps, dy_pad;
  BackwardAxis(int k, int in_size, int out_size, int stride_, int pad_, int dilation_, bool allow)
      : phase(allow && stride_ > 1 && dilation_ == 1),
        stride(stride_),
        pad(pad_),
        dilation(dilation_),
        taps(phase ? (k + stride_ - 1) / stride_ : k),
        dy_pad((k - 1) * dilation_) {
    // dy's zeros: o runs from pad / stride - (taps - 1) to (in_size - 1 + pad) / stride.
    if (phase) {
      dy_pad =
          std::max({0, taps - 1 - pad / stride, (in_size - 1 + pad) / stride - (out_size - 1)});
    }
  }
  // The tap read at coordinate i, step j of the reduction; the dy coordinate; whether it counts.
  Expr Tap(Expr i, Expr j) const { return phase ? (i + pad) % stride + stride * j : j; }
  Expr Dy(Expr i, Expr j) const {
    if (phase) return (i + pad) / stride - j;
    Expr t = i + pad - j * dilation;
    return stride == 1 ? t : t / stride;
  }
  Expr Counts(Expr i, Expr j) const {
    return phase || stride == 1 ? Halide::Internal::const_true()
                                : (i + pad - j * dilation) % stride == 0;
  }
};

Lowered LowerConvBackwardInput(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  const ConvInts a(n.attrs.Get<Conv2dBackwardInputAttrs>().conv);
  const Shape& dys = ctx.input_shape(n, 0);
  const Shape& ws = ctx.input_shape(n, 1);
  const int KH = static_cast<int>(ws[2]), KW = static_cast<int>(ws[3]);
  const bool cpu = !ctx.gpu();
  const BackwardAxis ay(KH, static_cast<int>(n.shape[2]), static_cast<int>(dys[2]), a.stride_h,
                        a.pad_h, a.dilation_h, cpu);
  const BackwardAxis ax(KW, static_cast<int>(n.shape[3]), static_cast<int>(dys[3]), a.stride_w,
                        a.pad_w, a.dilation_w, cpu && ctx.layout(n) == Layout::kBatchInner);
  // dy with zeros outside its extent, materialized per image.
  const bool copy = NeedsBatchInnerCopy(ctx, n, 0);
  Func dypad = PadZero(ctx, n, in[0], dys, ay.dy_pad, ax.dy_pad, "dypad", copy);
  // The weights, zero past the kernel where a phase reads taps up to stride * taps - 1.
  Func weights = in[1];
  std::optional<Func> wpad;
  if ((ay.phase && ay.taps * ay.stride > KH) || (ax.phase && ax.taps * ax.stride > KW)) {
    std::vector<Var> w = ctx.Vars(4);
    wpad = ctx.NewFunc(n, "wpad");
    ctx.Define(*wpad, w,
               Halide::select(w[2] < KH && w[3] < KW,
                              ctx.At(in[1], {w[0], w[1], Halide::min(w[2], KH - 1),
                                             Halide::min(w[3], KW - 1)}),
                              Halide::cast(ctx.float_type(), 0)));
    weights = *wpad;
  }
  Halide::RDom r = ctx.ReductionDomain({ws[0], ay.taps, ax.taps}, "r");
  const Taps t = TapsOf(ctx, r);  // ch = o; ky, kx: the axes' reduction steps
  std::vector<Var> v = ctx.Vars(4);
  // Batch-inner, an output position is one realization of the accumulator tile, so a predicate
  // on the taps that position reads within the kernel lets Halide trim the tap loops (TrimNoOps)
  // instead of multiplying by wpad's zeros: a 3x3 stride-2 input gradient sums 9 of the 16 taps
  // its phases cover, a 1x1 stride-2 one 1 of 4. Measured (small ResNet, Adam, batch 64, Halide's
  // profiler, two interleaved pairs, 2026-12-03): its input gradients took 1.27-1.29x the time
  // of its forward convolutions with the zero taps, 1.13x without.
  if (wpad && ctx.layout(n) == Layout::kBatchInner) {
    r.where(ay.Tap(v[2], t.ky) < KH && ax.Tap(v[3], t.kx) < KW);
  }
  Func acc = ctx.NewFunc(n, "acc");
  ctx.Define(acc, v, Halide::cast(ctx.float_type(), 0));
  // dypad is shifted by (dy_pad, dy_pad) so every coordinate read is a defined zero or dy.
  Expr term =
      ctx.At(dypad, {v[0], t.ch, ay.Dy(v[2], t.ky) + ay.dy_pad, ax.Dy(v[3], t.kx) + ax.dy_pad}) *
      ctx.At(weights, {t.ch, v[1], ay.Tap(v[2], t.ky), ax.Tap(v[3], t.kx)});
  Expr ok = ay.Counts(v[2], t.ky) && ax.Counts(v[3], t.kx);
  if (!Halide::Internal::is_const_one(ok)) {
    term = Halide::select(ok, term, Halide::cast(ctx.float_type(), 0));
  }
  ctx.Ref(acc, v) += term;
  Lowered l = ConvLike(ctx, n, acc, r, weights,
                       ay.dy_pad || ax.dy_pad || copy ? std::optional<Func>(dypad) : std::nullopt);
  if (wpad) l.helpers.Add("wpad", *wpad);
  return l;
}

absl::StatusOr<TypeAndShape> InferConvBackwardWeight(const std::vector<const Node*>& in,
                                                     const Attrs& at) {
  KILN_ASSIGN_OR_RETURN(const Conv2dBackwardWeightAttrs* a,
                        ops::AttrsAs<Conv2dBackwardWeightAttrs>(at));
  KILN_RETURN_IF_ERROR(CheckConv(a->conv));
  const Shape& x = in[0]->shape;
  const Shape& dy = in[1]->shape;
  if (x.size() != 4 || dy.size() != 4 || x[0] != dy[0]) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected x [N, C, H, W] and dy [N, O, OH, OW], got ", ShapeString(x), " and ",
                     ShapeString(dy)));
  }
  if (OutSpatial(a->conv, x[2], x[3], a->kernel_h, a->kernel_w) != Shape{dy[2], dy[3]}) {
    return absl::InvalidArgumentError("kernel size does not match the output gradient");
  }
  return TypeAndShape{DType::kFloat, {dy[1], x[1], a->kernel_h, a->kernel_w}};
}

// The batch-inner padded copy a forward convolution of the same input with the same padding made
// in this pipeline (the Func a weight gradient's PadZero would define again), or null.
Func* ForwardPad(const LowerCtx& ctx, const Node& n, const ConvInts& a) {
  for (int id = 0; id < n.id; ++id) {
    const Node& f = ctx.graph().node(id);
    if (f.op != OpKind::kConv2D || f.inputs[0] != n.inputs[0] ||
        ctx.layout(f) != Layout::kBatchInner) {
      continue;
    }
    const ConvInts b(f.attrs.Get<Conv2dAttrs>());
    if (b.pad_h != a.pad_h || b.pad_w != a.pad_w) continue;
    if (Func* pad = ctx.Helper(id, "pad")) return pad;
  }
  return nullptr;
}

// Output columns of the weight gradient's partial sums: OW rounded up to whole vectors (dy is
// zero-padded there), so every load and accumulator is a full, aligned vector.
int64_t PaddedColumns(int64_t ow, int vs) { return (ow + vs - 1) / vs * vs; }

// dw(o, c, ky, kx) = sum_{n, oy, ox} dy(n, o, oy, ox) * xpad(n, c, oy*sh + ky*dh, ox*sw + kx*dw),
// as a fixed split (deterministic for any thread count): part(o, c, ky, kx, ox) sums over
// (n, oy) with ox a vector lane (OW padded to whole vectors with zeros of dy); dw sums part
// over ox. part_acc is part's accumulator tile (see the schedule).
// Batch-inner layout (the output gradient dy planned batch-inner): the vector lanes are images.
// part(o, c, ky, kx, lane) sums over (oy, ox, image block b) the products of dy and the input at
// image b * lanes + lane; dw sums part over its lanes. A fixed split, the same for any thread
// count. The image block is the innermost step of the reduction: a batch-inner buffer stores the
// blocks of one (channel, y, x) next to each other, so each operand is read as one dense stream
// (with the block outermost, every stream skipped all but one of each `blocks` cache lines). dy
// is read where it is stored (a planned node: a buffer of its own, batch-inner); the input
// through a batch-inner padded copy when it is padded or stored otherwise.
Lowered LowerConvBackwardWeightBatchInner(LowerCtx& ctx, const Node& n,
                                          const std::vector<Func>& in) {
  const ConvInts a(n.attrs.Get<Conv2dBackwardWeightAttrs>().conv);
  const Shape& xs = ctx.input_shape(n, 0);
  const Shape& dys = ctx.input_shape(n, 1);
  const int lanes = ctx.BatchLanes(dys[0]);
  const bool copy = ctx.input_layout(n, 0) != Layout::kBatchInner;
  // The forward convolution's padded copy where there is one: a second copy of the same values
  // was a pass over the tutorial CNN's conv2 input per step (0.03 ms in Halide's profile).
  Func* shared = ForwardPad(ctx, n, a);
  Func xpad = shared ? *shared : PadZero(ctx, n, in[0], xs, a.pad_h, a.pad_w, "pad", copy);
  Func dypad = in[1];
  Halide::RDom r = ctx.ReductionDomain({dys[2], dys[3], dys[0] / lanes}, "r");
  std::vector<RVar> rv = ctx.RVars(r);
  RVar oy = rv[0], ox = rv[1], block = rv[2];
  std::vector<Var> v5 = ctx.Vars(5);  // o, c, ky, kx, lane
  Func acc = ctx.NewFunc(n, "part_acc");
  ctx.Define(acc, v5, Halide::cast(ctx.float_type(), 0));
  Expr image = block * lanes + v5[4];
  Expr iy = oy * a.stride_h + v5[2] * a.dilation_h;
  Expr ix = ox * a.stride_w + v5[3] * a.dilation_w;
  ctx.Ref(acc, v5) += ctx.At(dypad, {image, v5[0], oy, ox}) * ctx.At(xpad, {image, v5[1], iy, ix});
  Func part = ctx.NewFunc(n, "part");
  ctx.Define(part, v5, ctx.At(acc, v5));
  std::vector<Var> v = ctx.Vars(4);
  Func f = ctx.NewFunc(n);
  // A fixed tree over the lanes, strict (ops::LaneTreeSum): as a 16-long dependent chain of
  // scalar adds this sum took 0.14-0.20 ms of the tutorial CNN's step (2026-12-03).
  ctx.Define(f, v, ops::LaneTreeSum(lanes, [&](int k) {
               return ctx.At(part, {v[0], v[1], v[2], v[3], Expr(k)});
             }));
  Lowered l{f, {{"part", part}, {"part_acc", acc}}, {{"r", r}}};
  if ((a.pad_h || a.pad_w || copy) && !shared) l.helpers.Add("pad", xpad);
  return l;
}

Lowered LowerConvBackwardWeight(LowerCtx& ctx, const Node& n, const std::vector<Func>& in) {
  if (!ctx.gpu() && ctx.input_layout(n, 1) == Layout::kBatchInner) {
    return LowerConvBackwardWeightBatchInner(ctx, n, in);
  }
  const ConvInts a(n.attrs.Get<Conv2dBackwardWeightAttrs>().conv);
  const Shape& xs = ctx.input_shape(n, 0);
  const Shape& dys = ctx.input_shape(n, 1);
  const int owp = static_cast<int>(PaddedColumns(dys[3], ctx.vector_width()));
  Func xpad = PadZero(ctx, n, in[0], xs, a.pad_h, a.pad_w, "pad", /*always=*/owp != dys[3]);
  std::vector<Var> v4 = ctx.Vars(4);
  Func dypad = ctx.NewFunc(n, "dypad");
  ctx.Define(dypad, v4,
             Halide::select(v4[3] < static_cast<int>(dys[3]),
                            ctx.At(in[1], {v4[0], v4[1], v4[2],
                                           Halide::min(v4[3], static_cast<int>(dys[3]) - 1)}),
                            Halide::cast(ctx.float_type(), 0)));
  Halide::RDom r = ctx.ReductionDomain({dys[0], dys[2]}, "r");
  std::vector<RVar> rv = ctx.RVars(r);
  RVar batch = rv[0], oy = rv[1];
  std::vector<Var> v5 = ctx.Vars(5);  // o, c, ky, kx, ox
  Func acc = ctx.NewFunc(n, "part_acc");
  ctx.Define(acc, v5, Halide::cast(ctx.float_type(), 0));
  Expr iy = oy * a.stride_h + v5[2] * a.dilation_h;
  Expr ix = v5[4] * a.stride_w + v5[3] * a.dilation_w;
  ctx.Ref(acc, v5) +=
      ctx.At(dypad, {batch, v5[0], oy, v5[4]}) * ctx.At(xpad, {batch, v5[1], iy, ix});
  Func part = ctx.NewFunc(n, "part");
  ctx.Define(part, v5, ctx.At(acc, v5));
  Halide::RDom rx(0, owp, "rx");
  std::vector<Var> v = ctx.Vars(4);
  Func f = ctx.NewFunc(n);
  ctx.Define(f, v, Halide::cast(ctx.float_type(), 0));
  ctx.Ref(f, v) += ctx.At(part, {v[0], v[1], v[2], v[3], rx.x});
  Lowered l{f, {{"part", part}, {"part_acc", acc}, {"dypad", dypad}}, {{"r", r}}};
  if (a.pad_h || a.pad_w || owp != dys[3]) l.helpers.Add("pad", xpad);
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
  // The batch in chunks of 16 images summed in parallel (each thread summed the whole batch x
  // output rows: 256 x 28 FMAs in a row for conv1's, 403 us per step at batch 256 on an H200).
  Func acc = l.helpers.Get("part_acc");
  if (dys[0] > 16) ctx.GpuSplitReduction(acc, part, ctx.RVars(l.rdoms.Get("r"))[0], dys[0], 16);
  ctx.GpuTileAll(acc, part);  // part itself is inlined into the sum
  ctx.GpuTileAll(l.helpers.Get("dypad"), dys);
  ctx.GpuTileAll(l.f, n.shape);
  if (Func* pad = l.helpers.Find("pad")) ctx.GpuTileAll(*pad, ctx.input_shape(n, 0));
}

// Batch-inner form: part is computed in register tiles of one vector of images, the tile's
// accumulators held while (oy, ox, image block) stream through, parallel over tiles. Two tile
// shapes, by how many new cache lines each step of the reduction needs per FMA:
// - Filter tiles, (ob output channels) x (the whole KH x KW filter) of one input channel, when the
//   filter fits the register budget (3x3: 2 x 9 = 18 of AVX-512's 24): per step ob dy vectors
//   and KH x KW input vectors feed ob * KH * KW FMAs; the input vectors of the other taps were
//   read a few steps before (the left and upper neighbours), so they come from L1. Tasks over
//   (c, output-channel block), each reading its channels' dy slab once.
// - Otherwise (5x5 over several channels) (ob output channels) x (the KW taps of one ky):
//   ob dy vectors and KW input vectors per ob * KW FMAs, tasks over (ky, c, output-channel
//   block), neighbours sharing the dy slab in the cache.
// The first convolution (one input channel) takes the filter tile up to budget + 4 (5x5: 25
// accumulators), so it reads its 4 MB output gradient once instead of KH times.
// Measured (Halide's profiler, batch 64, 2-core Zen 4, 2026-12-03), ms per step:
// - Small ResNet (Adam), its 3x3 weight gradients 16 -> 16 at 28x28 (two), 32 -> 32 at 14x14
//   and 16 -> 32 stride 2: 2.67, 2.17, 1.45, 0.97 as (8 o x 3 kx) tiles with the image block the
//   outermost step (perf put 40% of the loop's samples on the first FMA after its 8 dy loads);
//   1.98, 1.88, 1.60, 1.13 as (2 o x 3 x 3) tiles; 1.45, 1.43, 1.28, 0.86 (160, 162, 180, 134
//   GFLOP/s) with the block innermost as well.
// - Tutorial CNN (SGD), interleaved pairs: conv2's 1.41 / 1.56 -> 1.25 / 1.25, conv1's (the
//   whole-filter tile) 0.51 / 0.57 -> 0.31 / 0.36 with the block innermost; conv2's forward
//   1.16 / 1.38 and 1.09 / 1.13 in the same runs.
// The padded copy is batch-inner, vectorized over images, parallel over rows.
struct WeightGradTile {
  bool filter;  // (ob, KH, KW) tiles; otherwise (ob, KW) tiles per ky
  int ob;
};
WeightGradTile PlanWeightGradTile(const LowerCtx& ctx, const Node& n) {
  const int64_t O = n.shape[0], C = n.shape[1], KH = n.shape[2], KW = n.shape[3];
  const int budget = ctx.AccumulatorRegisters();
  if (KH * KW <= budget || (C == 1 && KH * KW <= budget + 4)) {
    return {true, ops::Divisor(O, std::max<int64_t>(1, budget / (KH * KW)))};
  }
  return {false, ops::Divisor(O, std::max<int64_t>(1, budget / KW))};
}

void ScheduleConvBackwardWeightBatchInner(LowerCtx& ctx, const Node& n, Lowered& l) {
  std::vector<Var> v4 = ctx.Vars(4);
  std::vector<Var> v5 = ctx.Vars(5);  // o, c, ky, kx, lane
  const int lanes = ctx.BatchLanes(ctx.input_shape(n, 1)[0]);
  const WeightGradTile tile = PlanWeightGradTile(ctx, n);
  Func f = l.f, part = l.helpers.Get("part"), acc = l.helpers.Get("part_acc");
  std::vector<RVar> r = ctx.RVars(l.rdoms.Get("r"));
  RVar oy = r[0], ox = r[1], block = r[2];
  Var oo("oo"), oi("oi"), t("t");
  if (Func* pad = l.helpers.Find("pad")) {
    ctx.StoreAs(*pad, 4, Layout::kBatchInner);
    pad->compute_root()
        .reorder(v4[0], v4[3], v4[2], v4[1])
        .vectorize(v4[0], lanes)
        .fuse(v4[2], v4[1], t)
        .parallel(t);
  }
  part.compute_root().split(v5[0], oo, oi, tile.ob);
  if (tile.filter) {
    part.reorder(v5[4], v5[3], v5[2], oi, v5[1], oo).fuse(v5[1], oo, t).unroll(v5[2]);
  } else {
    part.reorder(v5[4], v5[3], oi, v5[2], v5[1], oo).fuse(v5[2], v5[1], t).fuse(t, oo, t);
  }
  part.vectorize(v5[4], lanes).unroll(v5[3]).unroll(oi).parallel(t);
  acc.compute_at(part, t).vectorize(v5[4], lanes).unroll(v5[3]).unroll(v5[0]);
  Halide::Stage update = acc.update();
  if (tile.filter) {
    acc.unroll(v5[2]);
    update.reorder(v5[4], v5[3], v5[2], v5[0], block, ox, oy).unroll(v5[2]);
  } else {
    update.reorder(v5[4], v5[3], v5[0], block, ox, oy);
  }
  update.vectorize(v5[4], lanes).unroll(v5[3]).unroll(v5[0]);
  f.compute_root().parallel(v4[0]);
}

void ScheduleConvBackwardWeight(LowerCtx& ctx, const Node& n, Lowered& l) {
  if (ctx.gpu()) {
    ScheduleConvBackwardWeightGpu(ctx, n, l);
    return;
  }
  if (ctx.input_layout(n, 1) == Layout::kBatchInner) {
    ScheduleConvBackwardWeightBatchInner(ctx, n, l);
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
  Func f = l.f, part = l.helpers.Get("part"), acc = l.helpers.Get("part_acc");
  Func dypad = l.helpers.Get("dypad");
  std::vector<RVar> r = ctx.RVars(l.rdoms.Get("r"));
  RVar batch = r[0], oy = r[1];
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
  acc.update()
      .split(v5[4], xo, xi, vs)
      .reorder(xi, xo, v5[3], v5[0], oy, batch)
      .vectorize(xi)
      .unroll(xo)
      .unroll(v5[3])
      .unroll(v5[0]);
  f.compute_root();
  f.update().parallel(v4[0]);
  if (Func* pad = l.helpers.Find("pad")) {
    pad->compute_root().parallel(v4[0]).vectorize(v4[3], vs, Halide::TailStrategy::GuardWithIf);
  }
}

}  // namespace

extern const OpDef kConv2DOp = {
    "conv2d",  Pattern::kComplex, 2,       InferConv, ConvVjp,
    LowerConv, ScheduleConvLike,  nullptr, nullptr,   /*batch_activation=*/true};
extern const OpDef kConv2DBackwardInputOp = {
    "conv2d_backward_input",  Pattern::kComplex, 2,
    InferConvBackwardInput,   nullptr,           LowerConvBackwardInput,
    ScheduleConvLike,         nullptr,           nullptr,
    /*batch_activation=*/true};
extern const OpDef kConv2DBackwardWeightOp = {
    "conv2d_backward_weight", Pattern::kComplex,         2, InferConvBackwardWeight, nullptr,
    LowerConvBackwardWeight,  ScheduleConvBackwardWeight};

}  // namespace kiln
