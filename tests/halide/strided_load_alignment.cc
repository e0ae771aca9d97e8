// Halide 14 marks some dense vector loads as more aligned than their address is: a strided load
// (stride 2 to 4) at a constant index whose remainder modulo the stride is not 0 is emitted as a
// dense load starting that remainder lower, and its alignment is then recomputed as
// mod_imp(remainder - offset, modulus), which is 0 when the index is a constant (modulus 0). So
// a[ramp(7, 2, 3)] becomes a load of a[6..11], 24 bytes into the allocation, marked aligned to
// the native vector (32 bytes with AVX2, 64 with AVX-512). See CodeGen_LLVM::visit(const Load *)
// in Halide 14's src/CodeGen_LLVM.cpp; Halide 16 replaced that code path.
//
// Kiln meets it in the stride-2 conv2d_backward_input op case (6-wide output rows): the update of
// the accumulator tile reads it as stride-2 vectors at odd constant offsets. Without Halide's
// `asan` feature LLVM promotes the small tile to registers and that load never reaches memory.
// With it, Halide runs LLVM's AddressSanitizer pass before that promotion, the tile stays in
// memory and the load becomes `vmovaps` of an address that is 8 mod 16: SIGSEGV inside the
// instrumented code, right after ASan's own shadow checks of the same bytes passed. Nothing is
// read or written out of bounds.
//
// This program uses Halide only (no Kiln code). It computes that case (the conv2d_backward_input
// lowering and schedule written out) and a one-line version of it, and checks both against
// float64 loops, with Halide's bounds assertions on and every buffer placed against a PROT_NONE
// page (ending at one, then starting after one), so an access past either end would fault:
//   strided_load_alignment          the asan feature off: prints PASS (a ctest in every build)
//   strided_load_alignment --asan   the asan feature on; needs a program built with
//                                   -fsanitize=address (build-asan/): AddressSanitizer: SEGV
//   strided_load_alignment --heap   the one-line version with its buffer on the heap, no
//                                   sanitizer anywhere: SIGSEGV in any build (the misaligned load
//                                   is Halide's; the asan feature only keeps the tile in memory)
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "Halide.h"

namespace {

using Halide::Buffer;
using Halide::Expr;
using Halide::Func;
using Halide::ImageParam;
using Halide::Param;
using Halide::RDom;
using Halide::TailStrategy;
using Halide::Target;
using Halide::Var;

// Floats against a PROT_NONE page: ending where it begins (kEnd) or starting where it ends
// (kStart).
class GuardedFloats {
 public:
  enum class Edge { kEnd, kStart };
  GuardedFloats(size_t n, Edge edge) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const size_t bytes = n * sizeof(float);
    const size_t data_pages = (bytes + page - 1) / page * page;
    size_ = data_pages + page;
    base_ = static_cast<char*>(
        mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (base_ == MAP_FAILED) {
      std::perror("mmap");
      std::exit(2);
    }
    char* guard = edge == Edge::kEnd ? base_ + data_pages : base_;
    if (mprotect(guard, page, PROT_NONE) != 0) {
      std::perror("mprotect");
      std::exit(2);
    }
    data_ = reinterpret_cast<float*>(edge == Edge::kEnd ? guard - bytes : base_ + page);
  }
  GuardedFloats(const GuardedFloats&) = delete;
  GuardedFloats& operator=(const GuardedFloats&) = delete;
  ~GuardedFloats() { munmap(base_, size_); }
  float* data() const { return data_; }

 private:
  char* base_ = nullptr;
  size_t size_ = 0;
  float* data_ = nullptr;
};

// dx = conv2d_backward_input(dy, w) with stride 2, padding 1, dy [2, 4, 4, 3], w [4, 3, 3, 3],
// dx [2, 3, 7, 6] (Halide dimensions innermost first), as Kiln lowers and schedules it on a CPU.
constexpr int kN = 2, kO = 4, kC = 3, kOh = 4, kOw = 3, kK = 3, kH = 7, kW = 6;
constexpr int kStride = 2, kPad = 1, kDyPad = kK - 1;

double ConvCase(const Target& target, GuardedFloats::Edge edge) {
  ImageParam dy(Halide::Float(32), 4, "dy"), w(Halide::Float(32), 4, "w");
  const int dy_dims[4] = {kOw, kOh, kO, kN}, w_dims[4] = {kK, kK, kC, kO};
  for (int d = 0, dy_stride = 1, w_stride = 1; d < 4; ++d) {
    dy.dim(d).set_bounds(0, dy_dims[d]).set_stride(dy_stride);
    w.dim(d).set_bounds(0, w_dims[d]).set_stride(w_stride);
    dy_stride *= dy_dims[d];
    w_stride *= w_dims[d];
  }
  Var x("x"), y("y"), c("c"), n("n");
  // dy with zeros around it, shifted by (kDyPad, kDyPad).
  Expr yy = y - kDyPad, xx = x - kDyPad;
  Func dypad("dypad");
  dypad(x, y, c, n) =
      Halide::select(yy >= 0 && yy < kOh && xx >= 0 && xx < kOw,
                     dy(Halide::clamp(xx, 0, kOw - 1), Halide::clamp(yy, 0, kOh - 1), c, n), 0.0f);
  // dx(n, c, y, x) = sum over o, ky, kx of dy(n, o, (y + 1 - ky) / 2, (x + 1 - kx) / 2) *
  // w(o, c, ky, kx), where both divisions are exact.
  RDom r({{0, kO}, {0, kK}, {0, kK}}, "r");  // o, ky, kx
  Expr ty = y + kPad - r.y, tx = x + kPad - r.z;
  Func acc("acc");
  acc(x, y, c, n) = 0.0f;
  acc(x, y, c, n) += Halide::select(
      ty % kStride == 0 && tx % kStride == 0,
      dypad(tx / kStride + kDyPad, ty / kStride + kDyPad, r.x, n) * w(r.z, r.y, c, r.x), 0.0f);
  Func dx("dx");
  dx(x, y, c, n) = acc(x, y, c, n);
  // The schedule: rows of 6 as one vector, the 3 channels x 1 row unrolled, the accumulator tile
  // (18 floats) at each vector of output, the padded input per image, parallel over images.
  Var xo("xo"), xi("xi"), ko("ko"), ki("ki"), yo("yo"), yi("yi");
  dx.split(x, xo, xi, kW)
      .split(c, ko, ki, kC)
      .split(y, yo, yi, 1)
      .reorder(xi, ki, yi, xo, ko, yo, n)
      .vectorize(xi)
      .unroll(ki)
      .unroll(yi)
      .parallel(n);
  acc.compute_at(dx, xo).vectorize(x).unroll(c).unroll(y);
  acc.update().reorder(x, c, y, r.z, r.y, r.x).vectorize(x).unroll(c).unroll(y);
  dypad.compute_at(dx, n).vectorize(x, target.natural_vector_size<float>(),
                                    TailStrategy::GuardWithIf);

  GuardedFloats dy_mem(kN * kO * kOh * kOw, edge), w_mem(kO * kC * kK * kK, edge);
  GuardedFloats dx_mem(kN * kC * kH * kW, edge);
  Buffer<float> dy_buf(dy_mem.data(), kOw, kOh, kO, kN), w_buf(w_mem.data(), kK, kK, kC, kO);
  Buffer<float> dx_buf(dx_mem.data(), kW, kH, kC, kN);
  for (int i = 0; i < kN * kO * kOh * kOw; ++i) dy_mem.data()[i] = std::sin(0.37f * i);
  for (int i = 0; i < kO * kC * kK * kK; ++i) w_mem.data()[i] = std::cos(0.11f * i);
  dy.set(dy_buf);
  w.set(w_buf);
  dx.realize(dx_buf, target);

  // Scattered from each output position (the opposite of the gather above), in float64.
  double worst = 0;
  for (int in = 0; in < kN; ++in) {
    for (int ic = 0; ic < kC; ++ic) {
      for (int iy = 0; iy < kH; ++iy) {
        for (int ix = 0; ix < kW; ++ix) {
          double want = 0;
          for (int o = 0; o < kO; ++o) {
            for (int oy = 0; oy < kOh; ++oy) {
              for (int ox = 0; ox < kOw; ++ox) {
                const int ky = iy - oy * kStride + kPad, kx = ix - ox * kStride + kPad;
                if (ky < 0 || ky >= kK || kx < 0 || kx >= kK) continue;
                want += static_cast<double>(dy_buf(ox, oy, o, in)) * w_buf(kx, ky, ic, o);
              }
            }
          }
          worst = std::max(worst, std::fabs(want - dx_buf(ix, iy, ic, in)));
        }
      }
    }
  }
  return worst;
}

// The same fault in one line: b(x) = a(2x + 7) + a(x) over 3 lanes reads a[ramp(7, 2, 3)] of a
// 12-float allocation, emitted as a load of a[6..11] marked as aligned as a[0].
double OneLineCase(const Target& target, GuardedFloats::Edge edge, bool heap) {
  Param<int> shift("shift");
  Var x("x");
  Func a("a"), b("b");
  a(x) = Halide::cast<float>(x + shift) * 0.5f;
  b(x) = a(2 * x + 7) + a(x);
  b.bound(x, 0, 3).vectorize(x);
  a.compute_root().vectorize(x, 4, TailStrategy::GuardWithIf);
  if (heap) a.store_in(Halide::MemoryType::Heap);
  shift.set(1);
  GuardedFloats out_mem(3, edge);
  Buffer<float> out(out_mem.data(), 3);
  b.realize(out, target);
  double worst = 0;
  for (int i = 0; i < 3; ++i) {
    const double want = (2 * i + 7 + 1) * 0.5 + (i + 1) * 0.5;
    worst = std::max(worst, std::fabs(want - out(i)));
  }
  return worst;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (argc > 2 || (mode != "" && mode != "--asan" && mode != "--heap")) {
    std::fprintf(stderr, "usage: %s [--asan | --heap]\n", argv[0]);
    return 2;
  }
  Target target = Halide::get_jit_target_from_environment();
  if (mode == "--asan") target = target.with_feature(Target::ASAN);
  std::printf("target %s\n", target.to_string().c_str());
  if (mode == "--heap") {
    std::printf("one-line case, buffer on the heap (Halide 14 faults here)\n");
    std::fflush(stdout);
    std::printf("max error %g\n", OneLineCase(target, GuardedFloats::Edge::kEnd, true));
    return 1;
  }
  bool ok = true;
  for (GuardedFloats::Edge edge : {GuardedFloats::Edge::kEnd, GuardedFloats::Edge::kStart}) {
    const char* where = edge == GuardedFloats::Edge::kEnd ? "ending at" : "starting after";
    std::printf("conv2d_backward_input stride 2, buffers %s a PROT_NONE page: ", where);
    std::fflush(stdout);
    const double conv = ConvCase(target, edge);
    std::printf("max error %g\none-line case, buffer %s a PROT_NONE page: ", conv, where);
    std::fflush(stdout);
    const double line = OneLineCase(target, edge, false);
    std::printf("max error %g\n", line);
    ok = ok && conv < 1e-5 && line == 0;
  }
  std::printf("%s\n", ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}
