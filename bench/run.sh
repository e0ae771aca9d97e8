#!/usr/bin/env bash
# Side-by-side training throughput: Kiln, PyTorch and LibTorch (PyTorch's C++ frontend), same
# models, batch sizes, data and 2 threads, in one run. Prints a Markdown table (median images/s,
# ratio of Kiln to the faster peer) and writes it to bench/results.md. Run it on an otherwise idle
# machine: the peers' OpenMP threads spin and collapse when the cores are shared.
#   bench/run.sh [EPOCHS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
epochs=${1:-3}
scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target kiln_bench
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
out=$(mktemp)
export HL_NUM_THREADS=2 OMP_NUM_THREADS=2
./build/bench/kiln_bench --data_dir=data/mnist --epochs="$epochs" >>"$out"
if [ "$peer_ok" = 1 ]; then
  /usr/bin/python3 bench/pytorch_peer.py data/mnist "$epochs" >>"$out" || echo "bench: the PyTorch peer failed"
else
  echo "bench: the PyTorch peer could not be installed"
fi
if [ "$libtorch_ok" = 1 ]; then
  ./build/bench/libtorch_peer data/mnist "$epochs" >>"$out" || echo "bench: the LibTorch peer failed"
else
  echo "bench: the LibTorch peer could not be built"
fi
/usr/bin/python3 - "$out" <<'PY' | tee bench/results.md
import json, sys, platform, datetime
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
by = lambda peer: {r["model"]: r for r in rows if r["peer"] == peer}
kiln, torch, libtorch = by("kiln"), by("pytorch"), by("libtorch")
fmt = lambda v: f"{v:.0f}" if v else "n/a"
print(f"# Training throughput, {datetime.date.today()}, {platform.machine()}, 2 threads\n")
print("| model | batch | Kiln img/s | PyTorch img/s | LibTorch img/s | Kiln / faster peer | Kiln compile s | Kiln eval img/s | Kiln test acc |")
print("|---|---|---|---|---|---|---|---|---|")
for m, k in kiln.items():
    p = torch.get(m, {}).get("train_images_per_s")
    l = libtorch.get(m, {}).get("train_images_per_s")
    best = max([v for v in (p, l) if v] or [0])
    ratio = f"{k['train_images_per_s'] / best:.1f}x" if best else "n/a"
    print(f"| {m} | {k['batch']} | {k['train_images_per_s']:.0f} | {fmt(p)} | {fmt(l)} | {ratio} "
          f"| {k['compile_s']:.2f} | {k['eval_images_per_s']:.0f} | {k['test_accuracy']:.4f} |")
peers = [next(iter(d.values()))["config"] for d in (torch, libtorch) if d]
print("\nPeers: " + "; ".join(peers) + ". Data preloaded as tensors, batches gathered through a "
      "per-epoch permutation; medians of the timed epochs after a 200-step warm-up; SGD for every "
      "model on every side. Test accuracy is after the timed epochs (SGD), not a tuned result.")
PY
rm -f "$out"
