#!/usr/bin/env python3
"""Data-parallel scaling on paper (docs/SCALING.md): step time and efficiency of N ranks from a
measured per-rank compute rate and a standard cost model of the gradient allreduce.

  ring allreduce:      2 (N - 1) a + 2 (N - 1) / N * S / B
  recursive doubling:  log2(N) (a + S / B)
with latency a and link bandwidth B; S the gradient buffer in bytes. No overlap of the allreduce
with the backward pass (Kiln sums the whole buffer between the two phases).

  scripts/scaling_model.py SECONDS_PER_IMAGE_CNN [SECONDS_PER_IMAGE_10M]
"""
import math
import sys

cnn_s = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0 / 9940
big_s = float(sys.argv[2]) if len(sys.argv) > 2 else 60e6 / 133e9
models = {  # gradient bytes (float32, each gradient 64-byte aligned), seconds per image per rank
    "tutorial CNN (20,350 parameters)": (20480 * 4, cnn_s),
    "10M-parameter model": (10_000_000 * 4, big_s),
}
links = {"10 Gb/s": (20e-6, 1.25e9), "100 Gb/s": (3e-6, 12.5e9)}


def ring(n, a, b, s):
    return 0.0 if n == 1 else 2 * (n - 1) * a + 2 * (n - 1) / n * s / b


def doubling(n, a, b, s):
    return 0.0 if n == 1 else math.log2(n) * (a + s / b)


per_rank_batch = 64
print(f"per-rank batch {per_rank_batch}; efficiency = compute / (compute + allreduce)\n")
for name, (s, per_image) in models.items():
    compute = per_rank_batch * per_image
    print(f"### {name}: {s / 1e6:.3f} MB of gradients, {compute * 1e3:.2f} ms of compute per step\n")
    print("| ranks | link | ring allreduce | ring efficiency | doubling allreduce | doubling efficiency |"
          " per-rank batch for allreduce <= 10% (better algorithm) | global batch |")
    print("|---|---|---|---|---|---|---|---|")
    for link, (a, b) in links.items():
        for n in (2, 4, 8, 16, 32, 64):
            r, d = ring(n, a, b, s), doubling(n, a, b, s)
            best = min(r, d)
            need = math.ceil(9 * best / per_image)  # compute >= 9 x allreduce
            print(f"| {n} | {link} | {r * 1e3:.3f} ms | {compute / (compute + r):.1%} | "
                  f"{d * 1e3:.3f} ms | {compute / (compute + d):.1%} | {need} | {need * n} |")
    print()
