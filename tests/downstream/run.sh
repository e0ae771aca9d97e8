#!/usr/bin/env bash
# Installs Kiln from BUILD_DIR into a temporary prefix and uses it from outside the tree:
#  1. tests/downstream (C and C++, find_package(Kiln) from inside a function, then Halide's own
#     package): a JIT program and an AOT training binary;
#  2. the project README.md shows under "Using Kiln from your own CMake project" (C++ only), copied
#     from README.md, with this directory's sources: its JIT program, training binary, predict tool
#     and inference library;
#  3. the same AOT build with the installed kiln-aot: its training binary, predict tool, inference
#     library and header.
#   run.sh BUILD_DIR SOURCE_DIR DATA_DIR WORK_DIR
set -euo pipefail
build=$1 src=$2 data=$3 work=$4
here="$src/tests/downstream"
digit="$src/examples/data/digit_7.png"
rm -rf "$work" && mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" >/dev/null
configure_and_build() {  # SOURCE BUILD
  if ! cmake -S "$1" -B "$2" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$work/prefix" >"$2.log" 2>&1; then
    cat "$2.log"
    echo "configuring $1 failed"
    exit 1
  fi
  cmake --build "$2" -j2 >/dev/null
}
flags=(--data_dir="$data" --progress=false --plot= --log_every=0 --min_accuracy=0.9)
no_shared_deps() {  # BINARY (a function: `! pipeline` alone does not stop a set -e script)
  if ldd "$1" | grep -iE 'halide|llvm|absl|png|jpeg|libz'; then
    echo "$1 needs the shared libraries above"
    return 1
  fi
}
predicts_7() {  # PREDICT_TOOL CHECKPOINT
  local out
  out=$("$1" --checkpoint="$2" "$digit")
  echo "$out"
  grep -q "digit_7.png: 7" <<<"$out" || { echo "$1 does not see a 7 in $digit"; return 1; }
}

# 1.
configure_and_build "$here" "$work/build"
"$work/build/jit_softmax" "${flags[@]}" --save= | grep RESULT
"$work/build/softmax_train" "${flags[@]}" --save= | grep RESULT
no_shared_deps "$work/build/softmax_train"

# 2.
mkdir -p "$work/readme_src"
awk '/^### Using Kiln from your own CMake project$/ { s = 1 }
     s && b && /^```$/ { exit }
     s && b { print }
     s && /^```cmake$/ { b = 1 }' "$src/README.md" >"$work/readme_src/CMakeLists.txt"
if ! grep -qx 'project(x CXX)' "$work/readme_src/CMakeLists.txt"; then
  echo "README.md: no CMakeLists.txt declaring project(x CXX) under 'Using Kiln from your own CMake project'"
  exit 1
fi
cp "$here/jit_softmax.cc" "$work/readme_src/my_program.cc"
cp "$here/softmax_model.cc" "$work/readme_src/my_model.cc"
configure_and_build "$work/readme_src" "$work/readme"
"$work/readme/my_program" "${flags[@]}" --save= | grep RESULT
"$work/readme/my_train" "${flags[@]}" --save="$work/readme/my_train.safetensors" | grep RESULT
for f in my_train_predict my_train_aot/libmy_train_inference_all.a \
  my_train_aot/my_train_inference.h; do
  test -s "$work/readme/$f" || { echo "the README project did not build $f"; exit 1; }
done
predicts_7 "$work/readme/my_train_predict" "$work/readme/my_train.safetensors"
no_shared_deps "$work/readme/my_train"

# 3.
help=$("$work/prefix/bin/kiln-aot" --help)
if ! grep -q '^usage: kiln-aot MODEL.cc' <<<"$help" || grep -E '^#|set -e|^ *\$|"\$' <<<"$help"; then
  echo "kiln-aot --help: no usage line, or shell text in it:"
  echo "$help"
  exit 1
fi
"$work/prefix/bin/kiln-aot" "$here/softmax_model.cc" --name softmax_cli --batch 64 \
  --out "$work/cli" >/dev/null
for f in softmax_cli softmax_cli_predict libsoftmax_cli_inference_all.a softmax_cli_inference.h; do
  test -s "$work/cli/$f" || { echo "kiln-aot did not write $f"; exit 1; }
done
"$work/cli/softmax_cli" "${flags[@]}" --save="$work/cli/softmax.safetensors" | grep RESULT
predicts_7 "$work/cli/softmax_cli_predict" "$work/cli/softmax.safetensors"
no_shared_deps "$work/cli/softmax_cli"
no_shared_deps "$work/cli/softmax_cli_predict"
echo "DOWNSTREAM OK"
