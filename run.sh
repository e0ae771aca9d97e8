#!/usr/bin/env bash
# Set up, build, train the default example (the tutorial CNN) on real MNIST and print its test
# accuracy. Extra arguments go to the example, e.g. ./run.sh --epochs=10.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
mkdir -p out
./build/examples/mnist_cnn --data_dir=data/mnist --save=out/mnist_cnn.safetensors \
  --plot=out/mnist_cnn_loss --predict=examples/data/digit_7.png --min_accuracy=0.99 "$@"
