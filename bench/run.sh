#!/usr/bin/env bash
# Side-by-side training throughput: Kiln and PyTorch, same models, batch sizes, data, 2 threads,
# in one run. Prints a Markdown table (median images/s, ratio) and writes it to bench/results.md.
#   bench/run.sh [EPOCHS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
epochs=${1:-3}
scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target kiln_bench
peer_ok=1
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  echo "bench: installing the PyTorch peer (python3-torch, libopenblas0-openmp)"
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends \
    python3-torch libopenblas0-openmp >/dev/null || peer_ok=0
fi
out=$(mktemp)
export HL_NUM_THREADS=2 OMP_NUM_THREADS=2
./build/bench/kiln_bench --data_dir=data/mnist --epochs="$epochs" >>"$out"
if [ "$peer_ok" = 1 ]; then
  /usr/bin/python3 bench/pytorch_peer.py data/mnist "$epochs" >>"$out" || echo "bench: the PyTorch peer failed"
else
  echo "bench: the PyTorch peer could not be installed; Kiln only"
fi
/usr/bin/python3 - "$out" <<'PY' | tee bench/results.md
import json, sys, platform, datetime
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
kiln = {r["model"]: r for r in rows if r["peer"] == "kiln"}
torch = {r["model"]: r for r in rows if r["peer"] == "pytorch"}
print(f"# Training throughput, {datetime.date.today()}, {platform.processor() or platform.machine()}, 2 threads\n")
print("| model | batch | Kiln img/s | PyTorch img/s | Kiln / PyTorch | Kiln compile s | Kiln eval img/s | Kiln test acc |")
print("|---|---|---|---|---|---|---|---|")
for m, k in kiln.items():
    p = torch.get(m, {}).get("train_images_per_s")
    ratio = f"{k['train_images_per_s'] / p:.1f}x" if p else "n/a"
    print(f"| {m} | {k['batch']} | {k['train_images_per_s']:.0f} | {p and f'{p:.0f}' or 'n/a'} | {ratio} "
          f"| {k['compile_s']:.2f} | {k['eval_images_per_s']:.0f} | {k['test_accuracy']:.4f} |")
if torch:
    print(f"\nPeer: {next(iter(torch.values()))['config']}; data preloaded as tensors, batches gathered "
          "through a per-epoch permutation. Medians of the timed epochs after a 200-step warm-up.")
PY
rm -f "$out"
