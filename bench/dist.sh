#!/usr/bin/env bash
# Data-parallel training on this machine, in one run: one process with 2 Halide threads against
# 2 MPI ranks with 1 thread each, at the same global batch (128) and recipe (SGD, constant lr,
# no augmentation), for the MLP and the tutorial CNN. Rounds alternate the two forms; the table
# has the median images/s of each and, for the ranks, the time in collectives (the gradient
# allreduce plus the step's loss and metrics, waiting for the other rank included) per step and
# as a share of the step, then the allreduce alone at 2 and 4 ranks. Writes
# bench/dist_results.md. Run it on an otherwise idle machine.
#   bench/dist.sh [ROUNDS] [EPOCHS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds=${1:-3}
epochs=${2:-2}
scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target mnist_mlp mnist_cnn kiln_mpi dist_worker >/dev/null
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
flags=(--data_dir=data/mnist --epochs="$epochs" --optimizer=sgd --lr=0.05 --lr_schedule=constant
       --random_shift=0 --log_every=0 --progress=false --save= --plot= --predict=)
median() { sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
field() { grep -o "$1=[0-9.]*" | head -1 | cut -d= -f2; }
{
  echo "# Data-parallel training on one machine"
  echo
  echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores;" \
       "global batch 128, SGD, $epochs epochs per run, median of $rounds alternating rounds."
  echo
  echo "| model | 1 process x 2 threads (batch 128), images/s | 2 ranks x 1 thread (64 each), images/s | ratio | collectives per step | share of the step |"
  echo "|---|---|---|---|---|---|"
} > "$tmp/table"
for m in mlp cnn; do
  for r in $(seq "$rounds"); do
    HL_NUM_THREADS=2 ./build/examples/mnist_$m "${flags[@]}" --batch_size=128 > "$tmp/one.log" 2>&1
    field train_images_per_s < "$tmp/one.log" >> "$tmp/$m.one"
    unset HL_NUM_THREADS
    mpirun -n 2 ./build/examples/mnist_$m "${flags[@]}" --batch_size=64 > "$tmp/two.log" 2>&1
    field train_images_per_s < "$tmp/two.log" >> "$tmp/$m.two"
    grep -o '([0-9.]*%, [0-9.]* us per step)' "$tmp/two.log" | tr -d '(),%' |
      awk '{print $1, $2}' >> "$tmp/$m.coll"
  done
  one=$(median < "$tmp/$m.one") two=$(median < "$tmp/$m.two")
  share=$(cut -d' ' -f1 "$tmp/$m.coll" | median) us=$(cut -d' ' -f2 "$tmp/$m.coll" | median)
  printf '| %s | %.0f | %.0f | %.2f | %.1f us | %.1f%% |\n' "$m" "$one" "$two" \
    "$(awk -v a="$two" -v b="$one" 'BEGIN {print a / b}')" "$us" "$share" >> "$tmp/table"
done
{
  echo
  echo "The allreduce alone (MPI_Allreduce in place, float32, median over repetitions):"
  echo
  echo "| ranks | floats | bytes | median us |"
  echo "|---|---|---|---|"
  for n in 20480 10000000; do  # the tutorial CNN's gradient buffer; a 10M-parameter model's
    reps=2000; [ $n -gt 100000 ] && reps=20
    for r in 2 4; do
      mpirun -n $r ./build/tests/dist_worker allreduce $n $reps |
        awk -v b=$((n * 4)) '{split($2,a,"=");split($3,f,"=");split($4,u,"=");
          printf "| %s | %s | %s | %s |\n", a[2], f[2], b, u[2]}'
    done
  done
} >> "$tmp/table"
cat "$tmp/table"
cp "$tmp/table" bench/dist_results.md
