#!/usr/bin/env python3
"""Sums Halide's profiler reports (a step compiled with HL_JIT_TARGET=host-profile prints one per
run) into one table per pipeline: milliseconds per run of each stage, its share, its threads.

  HL_JIT_TARGET=host-profile HL_NUM_THREADS=2 build/bench/kiln_bench --models=cnn --epochs=1 \
      --cache_dir= > /tmp/prof.txt 2>&1
  bench/halide_profile.py /tmp/prof.txt [--min_share 0.01]
"""
import re
import sys
from collections import defaultdict


def main():
    args = sys.argv[1:]
    min_share = 0.01
    if "--min_share" in args:
        i = args.index("--min_share")
        min_share = float(args[i + 1])
        del args[i:i + 2]
    if len(args) != 1:
        sys.exit(__doc__)
    runs = defaultdict(int)
    total = defaultdict(float)
    stages = defaultdict(lambda: defaultdict(float))
    threads = defaultdict(lambda: defaultdict(float))
    pipeline = None
    stage_re = re.compile(r"^\s+(\S+?):\s*([0-9.]+)ms\s*\(\s*\d+%\)\s*threads:\s*([0-9.]+)")
    with open(args[0], errors="replace") as f:
        for line in f:
            if re.match(r"^\S+$", line.rstrip("\n")) and not line.startswith("{"):
                pipeline = line.strip()
                continue
            m = re.match(r"^\s+total time: ([0-9.]+) ms\s+samples: \d+\s+runs: (\d+)", line)
            if m and pipeline:
                total[pipeline] += float(m.group(1))
                runs[pipeline] += int(m.group(2))
                continue
            m = stage_re.match(line)
            if m and pipeline:
                ms = float(m.group(2))
                stages[pipeline][m.group(1)] += ms
                threads[pipeline][m.group(1)] += ms * float(m.group(3))
    if not runs:
        sys.exit("no Halide profiler report in " + args[0])
    for p in sorted(runs, key=lambda p: -total[p]):
        n = runs[p]
        print(f"### {p}: {n} runs, {total[p] / n:.3f} ms per run")
        print("| stage | ms per run | share | threads |")
        print("|---|---|---|---|")
        shown = 0.0
        for s, ms in sorted(stages[p].items(), key=lambda kv: -kv[1]):
            share = ms / total[p] if total[p] else 0
            if share < min_share:
                continue
            shown += ms
            t = threads[p][s] / ms if ms else 0
            print(f"| {s} | {ms / n:.3f} | {100 * share:.1f}% | {t:.2f} |")
        print(f"| (stages under {100 * min_share:g}%) | {(total[p] - shown) / n:.3f} | "
              f"{100 * (total[p] - shown) / total[p] if total[p] else 0:.1f}% | |")
        print()


if __name__ == "__main__":
    main()
