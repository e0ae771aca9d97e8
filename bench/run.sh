#!/usr/bin/env bash
# Side by side, in one run: Kiln, PyTorch and LibTorch (PyTorch's C++ frontend) on the same models,
# batch sizes, data and 2 threads, each model in its own process (peak memory is per model), plus
# the machine's ceiling (a peak-FMA Halide kernel and OpenBLAS sgemm) and the compile cache's time
# to a first step. Prints Markdown tables (medians; Kiln over the faster peer) and writes them to
# bench/results.md. Run it on an otherwise idle machine: the peers' OpenMP threads spin and
# collapse when the cores are shared. EPOCHS is the number of rounds (below).
#   bench/run.sh [EPOCHS] [MODELS]     e.g. bench/run.sh 3 "linear mlp cnn lenet5"
#   bench/run.sh 1 "resnet vit layernorm"   the residual network and the vision transformer
#                                           (their examples' optimizers) and the LayerNorm probe
# BENCH_RESULTS=FILE writes the tables there instead of bench/results.md.
# With the cnn among the models it also runs the scaling table (the CNN step at batch 16 to 256 and
# with 32- and 64-channel convolutions, rounds of 50 steps; BENCH_SCALING=0 leaves it out) and the
# CNN step for the portable AVX2 target against that target's own FMA ceiling.
# The probes below the model rows (per-step time, compile cache, two-phase step) run for the
# models asked for.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
epochs=${1:-3}
models=${2:-linear softmax mlp cnn lenet5}
scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target kiln_bench ceiling linear_train mnist_linear
peer_ok=1
sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
if ! /usr/bin/python3 -c "import torch" 2>/dev/null || ! dpkg -s libtorch-dev >/dev/null 2>&1; then
  echo "bench: installing the peers (python3-torch, libtorch-dev, libopenblas0-openmp)"
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends \
    python3-torch libtorch-dev libopenblas0-openmp >/dev/null || peer_ok=0
fi
cmake -S . -B build >/dev/null
libtorch_ok=0
cmake --build build -j"$(nproc)" --target libtorch_peer >/dev/null 2>&1 && libtorch_ok=1
# OpenBLAS 0.3.21 does not recognize this generation of Xeon and falls back to its SSE3
# ("Prescott") kernels: sgemm 60 instead of 300 GFLOP/s here; and a preset Haswell core type
# halved sgemm on an AVX-512 machine (176 vs 357 GFLOP/s). The peers get the best kernels the CPU
# can run, whatever the environment presets.
unset OPENBLAS_CORETYPE
if grep -qw avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
elif grep -qw avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell; fi
out=$(mktemp)
export HL_NUM_THREADS=2 OMP_NUM_THREADS=2
./build/bench/ceiling 2 >>"$out"
has() { case " $models " in *" $1 "*) return 0 ;; esac; return 1; }
# Rounds: each timed epoch is a round of its own, Kiln's then the peers' (each in a fresh process
# after the same warm-up), so that a machine whose speed drifts for minutes at a time (a shared
# VM: the tutorial CNN trained at 15.4k and at 25.4k images/s in runs two minutes apart,
# 2026-12-04) meets every side in the same state. Each row's rate is the median of its rounds, and
# "Kiln / faster peer" the median of the rounds' own ratios.
round_tag() { sed "s/^{/{\"round\": $1, /"; }
for round in $(seq "$epochs"); do
  for m in $models; do
    if [ "$m" = layernorm ]; then  # forward + backward of one LayerNorm on [1088, 64]
      [ "$round" = 1 ] || continue
      ./build/bench/kiln_bench --models=layernorm >>"$out" || echo "bench: Kiln failed on $m"
      [ "$peer_ok" = 1 ] && { /usr/bin/python3 bench/pytorch_peer.py data/mnist 1 layernorm >>"$out" ||
        echo "bench: the PyTorch peer failed on $m"; }
      continue
    fi
    ./build/bench/kiln_bench --data_dir=data/mnist --epochs=1 --models="$m" | round_tag "$round" \
      >>"$out" || echo "bench: Kiln failed on $m"
    if [ "$peer_ok" = 1 ]; then
      /usr/bin/python3 bench/pytorch_peer.py data/mnist 1 "$m" | round_tag "$round" >>"$out" ||
        echo "bench: the PyTorch peer failed on $m"
    fi
    if [ "$libtorch_ok" = 1 ]; then
      ./build/bench/libtorch_peer data/mnist 1 "$m" | round_tag "$round" >>"$out" ||
        echo "bench: the LibTorch peer failed on $m"
    fi
  done
  # The CNN step for the portable target (x86-64 AVX2 + FMA), against the AVX2 FMA ceiling.
  if has cnn; then
    ./build/bench/kiln_bench --data_dir=data/mnist --epochs=1 --models=cnn --target=portable |
      round_tag "$round" >>"$out" || echo "bench: Kiln failed on the portable cnn"
  fi
done
# Scaling: does the ratio hold as the work grows?
if has cnn && [ "${BENCH_SCALING:-1}" != 0 ]; then
  for m in cnn-b16 cnn-b32 cnn-b64 cnn-b128 cnn-b256 cnn-w32 cnn-w64; do
    ./build/bench/kiln_bench --data_dir=data/mnist --epochs=3 --steps=50 --models="$m" >>"$out" ||
      echo "bench: Kiln failed on $m"
    if [ "$peer_ok" = 1 ]; then
      BENCH_STEPS=50 /usr/bin/python3 bench/pytorch_peer.py data/mnist 3 "$m" >>"$out" ||
        echo "bench: the PyTorch peer failed on $m"
    fi
    if [ "$libtorch_ok" = 1 ]; then
      BENCH_STEPS=50 ./build/bench/libtorch_peer data/mnist 3 "$m" >>"$out" ||
        echo "bench: the LibTorch peer failed on $m"
    fi
  done
fi
[ "$peer_ok" = 1 ] || echo "bench: the PyTorch peer could not be installed"
[ "$libtorch_ok" = 1 ] || echo "bench: the LibTorch peer could not be built"
# Per-step time of the tutorial's linear model (batch 16) through the same driver: the AOT binary
# and the JIT example, 3 runs of one epoch each (the batch feed is included).
for run in 1 2 3; do
  has linear || break
  for prog in ./build/bench/linear_train "./build/examples/mnist_linear --cache_dir="; do
    $prog --data_dir=data/mnist --epochs=1 --progress=false --save= --plot= --log_every=0 |
      sed -n "s|^trained \([0-9]*\) steps, \([0-9]*\) images/s|{\"peer\": \"kiln\", \"probe\": \"per_step\", \"program\": \"${prog%% *}\", \"images_per_s\": \2}|p" >>"$out"
  done
done
# Compile cache: a cold process compiles and stores both steps, a second one loads them.
cache=$(mktemp -d)
for m in cnn lenet5 resnet vit; do
  has $m || continue
  for run in cold warm; do
    ./build/bench/kiln_bench --data_dir=data/mnist --models=$m --first_step_cache="$cache" >>"$out"
  done
done
rm -rf "$cache"
# The two-phase training step (gradient buffer, then the update) against one pipeline.
for m in mlp cnn; do
  has $m || continue
  ./build/bench/kiln_bench --data_dir=data/mnist --models=$m --two_phase --epochs="$epochs" >>"$out"
done
# The ceiling again at the end: a machine whose speed drifted during the run (a shared VM) shows.
./build/bench/ceiling 2 | sed 's/"peer": "ceiling"/"peer": "ceiling_end"/' >>"$out"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain --untracked-files=no -- . ':!bench/results*.md' 2>/dev/null | grep -q . && echo " (uncommitted changes)" || true)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
/usr/bin/python3 - "$out" "$commit$dirty" "$cpu" <<'PY' | tee "${BENCH_RESULTS:-bench/results.md}"
import json, sys, platform, datetime
import statistics
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
main_row = lambda r: ("probe" not in r and not r["model"].startswith("cnn-")
                      and r.get("target", "host") == "host")
def merge(rs):
    # A peer's rounds of one model as one row: the round of the median training rate, with the
    # medians of the evaluation rate and the compile time over all rounds.
    rs = sorted(rs, key=lambda r: r.get("train_images_per_s") or 0)
    m = dict(rs[(len(rs) - 1) // 2])
    for key in ("eval_images_per_s", "eval_gflops", "compile_s"):
        vals = [r[key] for r in rs if r.get(key) is not None]
        if vals:
            m[key] = statistics.median(vals)
    m["rounds"] = len(rs)
    return m
def by(peer, keep=main_row):
    groups = {}
    for r in rows:
        if r["peer"] == peer and keep(r):
            groups.setdefault(r["model"], []).append(r)
    return {m: merge(rs) for m, rs in groups.items()}
kiln, torch, libtorch = by("kiln"), by("pytorch"), by("libtorch")
def round_ratios(model, key):
    # Kiln's rate over the faster peer's, round by round.
    out = []
    for r in sorted({x.get("round") for x in rows if x.get("round") is not None}):
        side = lambda peer: next((x.get(key) for x in rows if x["peer"] == peer and main_row(x)
                                  and x["model"] == model and x.get("round") == r), None)
        best = max([v for v in (side("pytorch"), side("libtorch")) if v] or [0])
        k = side("kiln")
        if k and best:
            out.append(k / best)
    return out
ceil = {r["kernel"]: r for r in rows if r["peer"] == "ceiling"}
peak = ceil.get("halide_fma", {}).get("gflops", 0)
fmt = lambda v, d=0: f"{v:,.{d}f}" if v else "n/a"
def ratio(k, key):
    rr = round_ratios(k["model"], key)
    if rr:
        return f"{statistics.median(rr):.2f}x" + (f" ({min(rr):.2f}-{max(rr):.2f})" if len(rr) > 1 else "")
    best = max([v for v in (torch.get(k["model"], {}).get(key), libtorch.get(k["model"], {}).get(key)) if v] or [0])
    return f"{k[key] / best:.2f}x" if best else "n/a"
print(f"# Kiln benchmark, {datetime.date.today()}, commit {sys.argv[2]}, {platform.machine()}, 2 threads\n")
print(f"CPU: {sys.argv[3]}\n")
print("Machine ceiling (same run): " + "; ".join(
    f"{n} {c['gflops']:.1f} GFLOP/s" if "gflops" in c else f"{n}: {c['error']}" for n, c in ceil.items()) + "\n")
end = {r["kernel"]: r.get("gflops") for r in rows if r["peer"] == "ceiling_end"}
drift = {n: (c["gflops"], end[n]) for n, c in ceil.items() if c.get("gflops") and end.get(n)}
if drift:
    print("Ceiling at the end of the run: " + "; ".join(f"{n} {e:.1f} GFLOP/s" for n, (b, e) in drift.items()) + "\n")
    moved = [n for n, (b, e) in drift.items() if abs(e - b) > 0.15 * max(b, e)]
    if moved:
        print(f"**Warning: the machine's speed changed during the run ({', '.join(moved)} moved by more "
              "than 15%): the ratios and the shares of the ceiling carry that drift; run it again.**\n")
print("## Training (images/s, median of the rounds: one timed epoch per process, Kiln and the peers "
      "in turn; the ratio is the median of the rounds' own ratios, their range in brackets)\n")
print("| model | batch | Kiln | PyTorch | LibTorch | Kiln / faster peer | Kiln GFLOP/s | % of ceiling | Kiln compile s |")
print("|---|---|---|---|---|---|---|---|---|")
for m, k in kiln.items():
    g = k["train_gflops"]
    print(f"| {m} | {k['batch']} | {fmt(k['train_images_per_s'])} | {fmt(torch.get(m, {}).get('train_images_per_s'))} "
          f"| {fmt(libtorch.get(m, {}).get('train_images_per_s'))} | {ratio(k, 'train_images_per_s')} "
          f"| {g:.1f} | {f'{100 * g / peak:.1f}%' if peak else 'n/a'} | {k['compile_s']:.2f} |")
print("\n## Evaluation on the 10,000 test images (images/s, batches of 1000, median of 3 per round, then of the rounds) and memory\n")
print("| model | Kiln | PyTorch | LibTorch | Kiln / faster peer | Kiln eval GFLOP/s | peak RSS MB Kiln / PyTorch / LibTorch | test acc Kiln / PyTorch / LibTorch |")
print("|---|---|---|---|---|---|---|---|")
for m, k in kiln.items():
    p, l = torch.get(m, {}), libtorch.get(m, {})
    acc = lambda r: f"{r['test_accuracy']:.4f}" if r.get("test_accuracy") is not None else "n/a"
    print(f"| {m} | {fmt(k['eval_images_per_s'])} | {fmt(p.get('eval_images_per_s'))} | {fmt(l.get('eval_images_per_s'))} "
          f"| {ratio(k, 'eval_images_per_s')} | {k['eval_gflops']:.1f} "
          f"| {fmt(k['peak_rss_mb'])} / {fmt(p.get('peak_rss_mb'))} / {fmt(l.get('peak_rss_mb'))} | {acc(k)} / {acc(p)} / {acc(l)} |")
port = list(by("kiln", lambda r: r.get("target") == "portable" and "probe" not in r).values())
avx2 = ceil.get("halide_fma_avx2", {}).get("gflops", 0)
if port and "cnn" in kiln and avx2 and peak:
    p, h = port[0], kiln["cnn"]
    share_p, share_h = p["train_gflops"] / avx2, h["train_gflops"] / peak
    print("\n## Portable target (x86-64 AVX2 + FMA): the CNN step against its own ceiling\n")
    print("| target | train images/s | GFLOP/s | FMA ceiling GFLOP/s | share of ceiling |")
    print("|---|---|---|---|---|")
    print(f"| host | {fmt(h['train_images_per_s'])} | {h['train_gflops']:.1f} | {peak:.0f} | {100 * share_h:.1f}% |")
    print(f"| portable | {fmt(p['train_images_per_s'])} | {p['train_gflops']:.1f} | {avx2:.0f} | {100 * share_p:.1f}% |")
    print(f"\nPortable share / host share: {share_p / share_h:.2f}")
scale = [r for r in rows if r.get("model", "").startswith("cnn-") and "probe" not in r]
if scale:
    print("\n## Scaling: the CNN training step as the work grows (ms per step, median of 3 rounds of 50 steps)\n")
    print("| model | batch | Kiln | PyTorch | LibTorch | Kiln / faster peer | Kiln GFLOP/s | % of ceiling |")
    print("|---|---|---|---|---|---|---|---|")
    ms = lambda r: 1e3 * r["batch"] / r["train_images_per_s"] if r and r.get("train_images_per_s") else 0
    for k in [r for r in scale if r["peer"] == "kiln"]:
        m = k["model"]
        p = next((r for r in scale if r["peer"] == "pytorch" and r["model"] == m), None)
        l = next((r for r in scale if r["peer"] == "libtorch" and r["model"] == m), None)
        best = max([r["train_images_per_s"] for r in (p, l) if r] or [0])
        g = k["train_gflops"]
        r = f"{k['train_images_per_s'] / best:.2f}x" if best else "n/a"
        print(f"| {m} | {k['batch']} | {ms(k):.2f} | {fmt(ms(p), 2)} | {fmt(ms(l), 2)} | {r} | {g:.1f} "
              f"| {f'{100 * g / peak:.1f}%' if peak else 'n/a'} |")
    print("\nPyTorch's row is the faster of its NCHW and channels-last formats.")
probes = [r for r in rows if r.get("probe") == "first_step"]
if probes:
    print("\n## Compile cache: process start to the first finished training step\n")
    print("| model | cache | data load s | steps ready s | first step done s (since main) | process age s (since exec) |")
    print("|---|---|---|---|---|---|")
    for r in probes:
        print(f"| {r['model']} | {'hit' if r['cached'] else 'cold (compile + store)'} | {r['data_load_s']:.3f} "
              f"| {r['steps_ready_s']:.3f} | {r['first_step_done_s']:.3f} | {r['process_age_s']:.2f} |")
split = [r for r in rows if r.get("probe") == "two_phase"]
if split:
    print("\n## Two-phase training step against one pipeline (Adam with clipping, median us per step)\n")
    print("| model | batch | one pipeline | two phases | cost | compile s one / two |")
    print("|---|---|---|---|---|---|")
    for r in split:
        print(f"| {r['model']} | {r['batch']} | {r['one_pipeline_us']:.1f} | {r['two_phase_us']:.1f} "
              f"| {100 * (r['two_phase_us'] / r['one_pipeline_us'] - 1):+.1f}% "
              f"| {r['compile_s_one']:.2f} / {r['compile_s_two']:.2f} |")
ln = {r["peer"]: r for r in rows if r.get("probe") == "layernorm"}
if ln:
    print("\n## LayerNorm forward + backward, [1088, 64] (the ViT's tokens), median us per call\n")
    print("| Kiln (a step: forward, backward, SGD pass) | PyTorch layer_norm + backward | Kiln / PyTorch time |")
    print("|---|---|---|")
    k, p = ln.get("kiln", {}).get("median_us"), ln.get("pytorch", {}).get("median_us")
    print(f"| {fmt(k, 1)} | {fmt(p, 1)} | {f'{k / p:.2f}' if k and p else 'n/a'} |")
per = [r for r in rows if r.get("probe") == "per_step"]
if per:
    print("\n## Per-step time, tutorial linear model, batch 16 (whole loop: batch feed + step)\n")
    print("| program | median us per step | images/s |")
    print("|---|---|---|")
    for prog, label in (("./build/bench/linear_train", "Kiln AOT binary"),
                        ("./build/examples/mnist_linear", "Kiln JIT example")):
        r = [x["images_per_s"] for x in per if x["program"] == prog]
        if r:
            m = statistics.median(r)
            print(f"| {label} | {16e6 / m:.2f} | {m:,.0f} |")
    for d, label in ((torch, "PyTorch"), (libtorch, "LibTorch")):
        if "linear" in d:
            m = d["linear"]["train_images_per_s"]
            print(f"| {label} (bench loop) | {16e6 / m:.2f} | {m:,.0f} |")
peers = [next(iter(d.values()))["config"] for d in (torch, libtorch) if d]
print("\nPeers: " + "; ".join(peers) + ". Data preloaded as tensors, batches gathered through a "
      "per-epoch permutation; each round one timed epoch after a 200-step warm-up; SGD for every "
      "model on every side (the ResNet: Adam; the ViT: AdamW, as in their examples). GFLOP/s count the matmuls and convolutions on the model's own shapes "
      "(forward, weight gradients, input gradients except the image's). Test accuracy is after "
      "the median round's warm-up and timed epoch (SGD), not a tuned result.")
formats = [f"{m}: {r['memory_format']} ({', '.join(f'{k} {v:,}' for k, v in r['train_images_per_s_by_format'].items())} images/s)"
           for m, r in torch.items() if "train_images_per_s_by_format" in r]
if formats:
    print("\nPyTorch's convolutional models run in both memory formats; the faster counts. " + "; ".join(formats) + ".")
PY
rm -f "$out"
