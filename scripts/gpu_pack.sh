#!/usr/bin/env bash
# Gathers what scripts/gpu_check.sh needs on the GPU machine (no Halide, LLVM or Abseil there):
# the AOT binaries (CUDA training at batch 64 and 256, the portable CPU reference, the GPU op
# tests) and MNIST gzipped, into PACK_DIR (default gpu_pack/, ignored by git), under 64 MiB.
#   scripts/gpu_pack.sh [BUILD_DIR] [PACK_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
pack=${2:-$root/gpu_pack}
bins=(examples/aot/mnist_cnn_train_cuda examples/aot/mnist_cnn_b256_cuda
      examples/aot/mnist_cnn_train_portable tests/gpu/gpu_op_tests)
for b in "${bins[@]}"; do
  [ -x "$build/$b" ] || { echo "gpu_pack: $build/$b is missing: build first (./test.sh or ninja)" >&2; exit 1; }
done
rm -rf "$pack"
mkdir -p "$pack/bin" "$pack/mnist"
for b in "${bins[@]}"; do cp "$build/$b" "$pack/bin/"; done
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  gzip -9 -c "$root/data/mnist/$f" > "$pack/mnist/$f.gz"
done
{
  echo "commit $(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)$(git -C "$root" diff --quiet 2>/dev/null || echo ' (uncommitted changes)')"
  echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m)"
  (cd "$pack" && sha256sum bin/* mnist/*)
} > "$pack/MANIFEST"
size=$(du -sb "$pack" | cut -f1)
echo "gpu_pack: $pack, $((size / 1048576)) MiB"
if [ "$size" -gt $((64 * 1048576)) ]; then
  echo "gpu_pack: over the 64 MiB that may travel" >&2
  exit 1
fi
