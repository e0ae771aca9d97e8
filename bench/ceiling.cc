// The machine's ceiling for bench/run.sh, measured in the same run as the models: peak fp32 FMA
// throughput of a Halide kernel on all threads (independent vector accumulators kept in
// registers, no memory traffic), and OpenBLAS's sgemm (cblas_sgemm, loaded at run time from
// libopenblas.so.0 so that no BLAS development package is needed). One JSON line each; a missing
// OpenBLAS is reported, not fatal. Where the host has more than AVX2, the same FMA kernel also
// runs for the portable x86-64 AVX2 + FMA target (kernel halide_fma_avx2, 12 accumulators: AVX2
// has 16 vector registers), the ceiling of Kiln's `portable` steps.
//   ceiling [THREADS [ACCUMULATORS]]   (16 accumulators: 328 GFLOP/s on 2 cores here, 2026-11-28)
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "Halide.h"

namespace {

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

template <typename F>
double MedianSeconds(int reps, F f) {
  std::vector<double> s;
  for (int i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    s.push_back(Seconds(t0));
  }
  std::sort(s.begin(), s.end());
  return s[s.size() / 2];
}

void PeakFma(int threads, int accumulators, const Halide::Target& t, const char* kernel) {
  using namespace Halide;
  const int lanes = t.natural_vector_size<float>();
  const int iters = 1 << 16;
  const int tile = lanes * accumulators, tiles = threads * 64;
  Var x("x"), xo("xo"), xi("xi");
  RDom r(0, iters);
  Func acc("acc"), out("out");
  // One FMA per lane per iteration. The addend, one scalar per iteration loaded and broadcast
  // (load ports, not FMA ports), only makes the update a reduction over r.
  Func addend("addend");
  Var k("k");
  addend(k) = cast<float>(k) * 1e-12f;
  addend.compute_root();
  acc(x) = cast<float>(x) * 1e-6f;
  acc(x) = acc(x) * 0.999999f + addend(r);
  out(x) = acc(x);
  out.split(x, xo, xi, tile).parallel(xo).vectorize(xi, lanes);
  // The tile's accumulators live on the stack, indexed by constants once unrolled: registers.
  acc.compute_at(out, xo).vectorize(x, lanes).unroll(x);
  acc.update().reorder(x, r).vectorize(x, lanes).unroll(x);
  out.compile_jit(t);
  Buffer<float> b(tile * tiles);
  out.realize(b);  // warm-up
  const double s = MedianSeconds(5, [&] { out.realize(b); });
  const double flops = 2.0 * iters * tile * tiles;
  std::printf(
      "{\"peer\": \"ceiling\", \"kernel\": \"%s\", \"gflops\": %.1f, \"threads\": %d, "
      "\"lanes\": %d, \"accumulators\": %d}\n",
      kernel, flops / s / 1e9, threads, lanes, accumulators);
}

void OpenBlasSgemm(int threads) {
  void* h = dlopen("libopenblas.so.0", RTLD_NOW);
  using Sgemm = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int,
                         float, float*, int);
  using SetThreads = void (*)(int);
  auto sgemm = h ? reinterpret_cast<Sgemm>(dlsym(h, "cblas_sgemm")) : nullptr;
  auto set_threads =
      h ? reinterpret_cast<SetThreads>(dlsym(h, "openblas_set_num_threads")) : nullptr;
  if (sgemm == nullptr) {
    std::printf("{\"peer\": \"ceiling\", \"kernel\": \"openblas_sgemm\", \"error\": \"%s\"}\n",
                "libopenblas.so.0 not found (apt-get install libopenblas0-openmp)");
    return;
  }
  if (set_threads) set_threads(threads);
  const int n = 2048;
  std::vector<float> a(n * n, 0.5f), b(n * n, 0.25f), c(n * n);
  auto call = [&] {
    sgemm(101, 111, 111, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
  };
  call();
  const double s = MedianSeconds(5, call);
  std::printf(
      "{\"peer\": \"ceiling\", \"kernel\": \"openblas_sgemm\", \"gflops\": %.1f, \"threads\": %d, "
      "\"n\": %d}\n",
      2.0 * n * n * n / s / 1e9, threads, n);
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  const Halide::Target host = Halide::get_jit_target_from_environment();
  PeakFma(threads, argc > 2 ? std::atoi(argv[2]) : 16, host, "halide_fma");
  if (host.arch == Halide::Target::X86 && host.has_feature(Halide::Target::AVX512)) {
    const Halide::Target avx2(host.os, host.arch, host.bits,
                              {Halide::Target::SSE41, Halide::Target::AVX, Halide::Target::AVX2,
                               Halide::Target::FMA, Halide::Target::F16C});
    PeakFma(threads, 12, avx2, "halide_fma_avx2");
  }
  OpenBlasSgemm(threads);
  return 0;
}
