#!/usr/bin/env bash
# Installs Kiln from BUILD_DIR into a temporary prefix, builds tests/downstream against it with
# find_package(Kiln), runs what it built, then does the same AOT build with the installed kiln-aot.
#   run.sh BUILD_DIR SOURCE_DIR DATA_DIR WORK_DIR
set -euo pipefail
build=$1 src=$2 data=$3 work=$4
rm -rf "$work" && mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$src/tests/downstream" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/build" -j2 >/dev/null
flags=(--data_dir="$data" --progress=false --save= --plot= --log_every=0 --min_accuracy=0.9)
"$work/build/jit_softmax" "${flags[@]}" | grep RESULT
"$work/build/softmax_train" "${flags[@]}" | grep RESULT
! ldd "$work/build/softmax_train" | grep -iE 'halide|llvm|absl|png|jpeg|libz'
"$work/prefix/bin/kiln-aot" "$src/tests/downstream/softmax_model.cc" --name softmax_cli \
  --batch 64 --out "$work/cli" >/dev/null
"$work/cli/softmax_cli" "${flags[@]}" | grep RESULT
! ldd "$work/cli/softmax_cli" | grep -iE 'halide|llvm|absl|png|jpeg|libz'
echo "DOWNSTREAM OK"
