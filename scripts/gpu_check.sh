#!/usr/bin/env bash
# The GPU check, in one call on a machine with an NVIDIA GPU and PyTorch (no Halide, LLVM or
# package registry needed): packed by scripts/gpu_pack.sh, run as
#   scripts/gpu_check.sh PACK_DIR OUT_DIR
# In order: (1) a one-kernel smoke test (the driver loads Halide's PTX and runs it); (2) the GPU
# op tests (every op case, forward and gradients, GPU against CPU); (3) 50 training steps of the
# tutorial CNN on the GPU against the portable CPU binary, losses within a relative 1e-2 (the
# kernels are right, not just the accuracy); (4) training to at least 99% test accuracy; (5)
# training and evaluation images/s and time to 99% at batch 256 against PyTorch eager on the same
# GPU (TF32 off on both sides: Kiln computes in float32); time to 99% with the same recipe on both
# sides (Adam 4e-3, cosine over 5 epochs, test accuracy checked after every epoch). Results: OUT_DIR/gpu_results.md, log
# OUT_DIR/gpu_check.log. Exit status: the number of failed stages.
# KILN_PYTHON names the Python with PyTorch (default python3).
#   --dry-run   the same script on a CPU machine: CPU binaries stand in for the CUDA ones, the op
#               tests check their harness only, training runs a few hundred steps (plumbing only).
set -u
dry=0
if [ "${1:-}" = "--dry-run" ]; then dry=1; shift; fi
pack=$(cd "${1:?usage: gpu_check.sh [--dry-run] PACK_DIR OUT_DIR}" && pwd)
out=${2:?usage: gpu_check.sh [--dry-run] PACK_DIR OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
py=${KILN_PYTHON:-python3}  # with PyTorch (and numpy)
exec > >(tee "$out/gpu_check.log") 2>&1
failed=0
declare -A res
stage() { echo; echo "== $(date -u +%H:%M:%S) $*"; }
fail() { echo "FAILED: $*"; failed=$((failed + 1)); }
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" | tail -1; }
# Every stage has a time limit (seconds; doubled in a dry run on a slow CPU): a hung kernel must
# not use up the machine's whole lease. A stage over its limit exits 124 and counts as failed.
limit() {
  local s=$1
  shift
  [ $dry = 1 ] && s=$((s * 2))
  timeout --kill-after=10 "$s" "$@"
}

stage "environment"
cat "$pack/MANIFEST"
(cd "$pack" && sha256sum --check --quiet <(grep -E '^[0-9a-f]{64}  ' MANIFEST)) || fail "pack checksums"
if [ $dry = 1 ]; then
  echo "DRY RUN on $(uname -m): CPU binaries stand in for the CUDA ones"
else
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
fi
$py -c 'import torch; print("PyTorch", torch.__version__, "CUDA", torch.version.cuda)' || true
data="$out/mnist"
mkdir -p "$data"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  gzip -dc "$pack/mnist/$f.gz" > "$data/$f" || fail "unpacking $f"
done
(cd "$data" && sha256sum --check --quiet <<'SUMS') || fail "MNIST checksums"
ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db  train-images-idx3-ubyte
65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5  train-labels-idx1-ubyte
0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7  t10k-images-idx3-ubyte
ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2  t10k-labels-idx1-ubyte
SUMS

bin="$pack/bin"
cpu="$bin/mnist_cnn_train_portable"
gpu="$bin/mnist_cnn_train_cuda"
gpu256="$bin/mnist_cnn_b256_cuda"
ops=("$bin/gpu_op_tests")
steps=()    # limits training runs in a dry run
device=cuda
if [ $dry = 1 ]; then
  gpu=$cpu
  gpu256=$cpu
  ops+=(--cpu_only)
  steps=(--max_steps=300)
  device=cpu
fi
common=(--data_dir="$data" --progress=false --save= --plot= --random_shift=0)

stage "1. smoke test: one kernel"
limit 60 "${ops[@]}" --filter=add_same_shape || fail "smoke test"

stage "2. GPU op tests"
limit 90 "${ops[@]}" > "$out/op_tests.txt"; rc=$?
cat "$out/op_tests.txt"
[ $rc = 0 ] || fail "op tests"
res[ops]=$(grep "GPU OP TESTS" "$out/op_tests.txt")

stage "3. 50 training steps, GPU against CPU"
for side in cpu gpu; do
  exe=$cpu; [ $side = gpu ] && exe=$gpu
  limit 90 "$exe" "${common[@]}" --epochs=1 --max_steps=50 --log_every=1 --lr_schedule=constant \
    --seed=3 > "$out/steps_$side.txt" 2>&1 || fail "50 steps on $side"
done
res[steps]=$($py - "$out/steps_cpu.txt" "$out/steps_gpu.txt" <<'PY'
import re, sys
def losses(p):
    return [float(m.group(1)) for m in re.finditer(r"loss is: ([-+0-9.eEnainf]+)", open(p).read())]
a, b = losses(sys.argv[1]), losses(sys.argv[2])
if len(a) != 50 or len(b) != 50:
    print(f"FAIL: {len(a)} CPU and {len(b)} GPU losses, expected 50 each"); sys.exit()
rel = [abs(x - y) / max(abs(x), 1e-6) for x, y in zip(a, b)]
worst = max(range(50), key=lambda i: rel[i])
ok = all(r <= 1e-2 for r in rel)
print(f"{'PASS' if ok else 'FAIL'}: max relative difference {rel[worst]:.2e} at step {worst + 1} "
      f"(cpu {a[worst]:.6f}, gpu {b[worst]:.6f}); step 50: cpu {a[-1]:.6f}, gpu {b[-1]:.6f}")
PY
)
echo "${res[steps]}"
case "${res[steps]}" in PASS*) ;; *) fail "50-step loss comparison" ;; esac

stage "4. training to 99% test accuracy (batch 64, Adam 2e-3 cosine, 5 epochs)"
limit 150 "$gpu" "${common[@]}" --epochs=5 --log_every=0 --min_accuracy=0.99 "${steps[@]}" \
  > "$out/train99.txt" 2>&1 || { [ $dry = 1 ] || fail "training to 99%"; }
grep -E "^epoch|RESULT|error" "$out/train99.txt"
res[acc]=$(field test_accuracy < "$out/train99.txt")
res[acc_rate]=$(field train_images_per_s < "$out/train99.txt")

stage "5a. Kiln throughput, batch 256 (4 epochs, Adam 2e-3 constant)"
limit 90 "$gpu256" "${common[@]}" --epochs=4 --log_every=0 --lr=2e-3 --lr_schedule=constant "${steps[@]}" \
  > "$out/kiln256.txt" 2>&1 || fail "batch-256 throughput run"
grep -E "^epoch|RESULT|error" "$out/kiln256.txt"
# Epochs after the first (which pays the driver's PTX compilation and the uploads), median.
res[kiln_train]=$($py - "$out/kiln256.txt" <<'PY'
import re, statistics, sys
t = [float(x) for x in re.findall(r"^epoch \d+: train loss .* ([0-9.]+) s$", open(sys.argv[1]).read(), re.M)]
print(f"{60000 // 256 * 256 / statistics.median(t[1:] or t):.0f}" if t else "n/a")
PY
)
res[kiln_eval]=$(field eval_images_per_s < "$out/kiln256.txt")

stage "5b. Kiln time to 99%, batch 256 (Adam 4e-3, cosine over 5 epochs, test set checked after every epoch)"
limit 90 "$gpu256" "${common[@]}" --epochs=5 --log_every=0 --lr=4e-3 --lr_schedule=cosine \
  --target_accuracy=0.99 "${steps[@]}" > "$out/kiln99.txt" 2>&1 || fail "time-to-99% run"
grep -E "test accuracy|TARGET|RESULT|error" "$out/kiln99.txt"
res[kiln_t99]=$(sed -n 's/.*after \([0-9]*\) epochs, \([0-9.]*\) s of training.*/\2 s (\1 epochs)/p' "$out/kiln99.txt")

stage "5c. PyTorch eager on the same device"
peer_args=(--device $device --batch 256 --epochs 3 --lr 2e-3 --target 0.99 --target_lr 4e-3 --horizon 5)
[ $dry = 1 ] && peer_args+=(--max_steps 20 --epochs 1 --horizon 1)
if [ $dry = 1 ] && ! $py -c 'import torch, numpy' 2>/dev/null; then
  echo "SKIPPED in the dry run: $py has no PyTorch"
  echo '{}' > "$out/pytorch.json"
else
  limit 180 $py "$root/bench/pytorch_gpu_peer.py" "$data" "${peer_args[@]}" > "$out/pytorch.json" || fail "PyTorch peer"
fi
cat "$out/pytorch.json"

stage "summary"
$py - "$out" "${res[kiln_train]:-n/a}" "${res[kiln_eval]:-n/a}" "${res[kiln_t99]:-n/a}" \
  "${res[acc]:-n/a}" "${res[acc_rate]:-n/a}" "${res[ops]:-n/a}" "${res[steps]:-n/a}" $dry <<'PY' | tee "$out/gpu_results.md"
import json, sys
out, ktrain, keval, kt99, acc, acc_rate, ops, steps, dry = sys.argv[1:]
try:
    p = json.load(open(f"{out}/pytorch.json"))
except Exception:
    p = {}
def ratio(a, b):
    try:
        return f"{float(a) / float(b):.2f}x"
    except Exception:
        return "n/a"
pt99 = p.get("time_to_target_s")
pt99_text = f"{pt99:.2f} s ({p.get('epochs_to_target')} epochs)" if pt99 else "not reached"
print(f"# GPU check{' (DRY RUN on the CPU: plumbing only, no GPU numbers)' if dry == '1' else ''}\n")
print(f"Device: {p.get('device', '?')}; peer: {p.get('config', '?')}\n")
print(f"- op tests: {ops}")
print(f"- 50 steps GPU vs CPU: {steps}")
print(f"- batch 64, 5 epochs: test accuracy {acc}, {acc_rate} training images/s (whole run)\n")
print("| batch 256 | Kiln | PyTorch eager | Kiln / PyTorch | target |")
print("|---|---|---|---|---|")
print(f"| training images/s | {ktrain} | {p.get('train_images_per_s', 0):.0f} | "
      f"{ratio(ktrain, p.get('train_images_per_s'))} | >= 2x |")
print(f"| evaluation images/s | {keval} | {p.get('eval_images_per_s', 0):.0f} | "
      f"{ratio(keval, p.get('eval_images_per_s'))} | |")
print(f"| time to 99% test accuracy | {kt99 or 'not reached'} | {pt99_text} | | < 2 s |")
PY
echo
echo "GPU CHECK: $failed stage(s) failed$([ $dry = 1 ] && echo ' (dry run)')"
exit $failed
