#!/usr/bin/env bash
# Builds tests/aot/inference_c_api.c against the exported inference library with plain compiler
# commands (no CMake), runs it on the test set and checks it counts exactly as many correct
# predictions as the training binary's own evaluation of the same checkpoint.
#   inference_c_api.sh GENERATED_DIR WORK_DIR CHECKPOINT DATA_DIR TRAINING_BINARY
set -euo pipefail
gen=$1 work=$2 ckpt=$3 data=$4 trainer=$5
src=$(dirname "${BASH_SOURCE[0]}")
cc -std=c11 -O2 -Wall -c "$src/inference_c_api.c" -I"$gen" -o "$work/c_api.o"
c++ "$work/c_api.o" "$gen/libmnist_cnn_train_inference_all.a" -lpthread -ldl -lm -o "$work/c_api"
! ldd "$work/c_api" | grep -iE 'halide|llvm|absl|png|jpeg'
"$work/c_api" "$ckpt" "$data" | tee "$work/c_api.txt"
want=$("$trainer" --data_dir="$data" --eval_only --progress=false --save= --plot= --load="$ckpt" |
  sed -n 's|^test accuracy: \([0-9]*\) / \([0-9]*\).*|C API: \1 / \2 correct|p')
grep -qx "$want" "$work/c_api.txt" && echo "C API AGREES ($want)"
