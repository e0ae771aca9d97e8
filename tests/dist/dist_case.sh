#!/usr/bin/env bash
# Data-parallel training as a user runs it, under mpirun (tests/CMakeLists.txt, label "dist").
#   dist_case.sh CASE MPIRUN MNIST_MLP_BINARY DATA_DIR OUT_DIR
# Prints PASS, or FAIL: <why> (and exits 1).
set -uo pipefail
case_name=$1 mpirun=$2 mlp=$3 data=$4 out=$5/$1
rm -rf "$out" && mkdir -p "$out" && cd "$out" || exit 1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
fail() { echo "FAIL: $*"; for f in *.log; do [ -f "$f" ] && { echo "--- $f"; tail -20 "$f"; }; done; exit 1; }
common=(--data_dir="$data" --progress=false --plot= --eval_batch_size=1000)

case $case_name in
one_rank_equals_no_mpi)
  # mpirun with one rank: the same bits as a run without MPI.
  "$mlp" "${common[@]}" --epochs=1 --max_steps=60 --log_every=20 --save=alone.safetensors \
    > alone.log 2>&1 || fail "the run without mpirun failed"
  "$mpirun" -n 1 "$mlp" "${common[@]}" --epochs=1 --max_steps=60 --log_every=20 \
    --save=mpi.safetensors > mpi.log 2>&1 || fail "the one-rank mpirun failed"
  cmp -s alone.safetensors mpi.safetensors || fail "the saved parameters differ"
  grep -q "ranks=1" mpi.log || fail "no ranks=1 on the RESULT line"
  diff <(grep '^epoch_id' alone.log) <(grep '^epoch_id' mpi.log) >/dev/null || fail "the loss lines differ"
  ;;
mismatched_model_fails_every_rank)
  # Rank 1 trains another batch size: both ranks stop with a message, before compiling, fast.
  start=$(date +%s)
  "$mpirun" -n 2 bash -c '
    extra=""; [ "$OMPI_COMM_WORLD_RANK" = 1 ] && extra="--batch_size=32"
    "$0" "$@" $extra; echo "rank $OMPI_COMM_WORLD_RANK exit $?" >&2' \
    "$mlp" "${common[@]}" --epochs=1 > run.log 2>&1
  took=$(( $(date +%s) - start ))
  grep -q "rank 1 differs from rank 0 in --batch_size (per rank): '32' on rank 1, '64' on rank 0" run.log ||
    fail "no message naming the rank, the field and both values"
  grep -q "rank 0 exit 1" run.log && grep -q "rank 1 exit 1" run.log || fail "not every rank exited 1"
  grep -q "\[rank 1\] error:" run.log || fail "rank 1's error is not prefixed with [rank 1]"
  grep -q "compiled in" run.log && fail "a step was compiled before the check"
  [ "$took" -le 10 ] || fail "took $took s (at most 10)"
  ;;
killed_rank_ends_the_job)
  # Rank 1 dies (SIGKILL) inside epoch 2; the job ends non-zero within the timeout, and the
  # checkpoint of epoch 1 loads. 1 epoch of 60000 / (2 x 64) = 468 steps, 2 collectives each.
  start=$(date +%s)
  KILN_TEST_KILL_RANK=1:1200 "$mpirun" -n 2 "$mlp" "${common[@]}" --epochs=3 --log_every=0 \
    --checkpoint=ck.safetensors --collective_timeout=5 > run.log 2>&1
  rc=$? took=$(( $(date +%s) - start ))
  [ $rc -ne 0 ] || fail "mpirun exited 0"
  grep -q "killing this rank at collective #1200" run.log || fail "the test hook did not fire"
  grep -q "RESULT" run.log && fail "a RESULT line after a rank died"
  [ "$took" -le 90 ] || fail "took $took s"
  "$mlp" "${common[@]}" --resume=ck.safetensors --eval_only > eval.log 2>&1 ||
    fail "the last checkpoint does not load"
  grep -q "resumed from ck.safetensors at epoch 1" eval.log || fail "the checkpoint is not epoch 1's"
  ;;
hung_rank_ends_the_job)
  # Rank 1 stops (SIGSTOP) in epoch 1: rank 0's watchdog ends it after --collective_timeout.
  start=$(date +%s)
  KILN_TEST_KILL_RANK=1:100:hang "$mpirun" -n 2 "$mlp" "${common[@]}" --epochs=1 --log_every=0 \
    --collective_timeout=3 > run.log 2>&1
  rc=$? took=$(( $(date +%s) - start ))
  [ $rc -ne 0 ] || fail "mpirun exited 0"
  grep -q "stopping this rank at collective #100" run.log || fail "the test hook did not fire"
  grep -q "error: allreduce #100 (.* bytes) did not complete within 3 s" run.log ||
    fail "no watchdog message"
  [ "$took" -le 30 ] || fail "took $took s"
  ;;
ctrl_c_checkpoints_and_resumes)
  # Ctrl-C on mpirun (it sends the ranks SIGTERM): every rank stops after the same step, rank 0
  # writes the checkpoint, and two ranks continue from it inside the epoch.
  "$mpirun" -n 2 "$mlp" "${common[@]}" --epochs=30 --log_every=0 --save= > run.log 2>&1 &
  job=$!
  for _ in $(seq 300); do grep -q "^epoch 2:" run.log && break; sleep 0.1; done
  kill -INT $job
  wait $job
  grep -q "interrupted (SIGTERM) in epoch" run.log || fail "no interruption message"
  [ -f mnist_mlp_interrupted.safetensors ] || fail "no checkpoint"
  epoch=$(grep -o "interrupted (SIGTERM) in epoch [0-9]*" run.log | grep -o "[0-9]*$")
  batch=$(grep -o "in epoch [0-9]* at batch [0-9]*" run.log | grep -o "[0-9]*$")
  # The rest of that epoch: 60000 / (2 x 64) = 468 global batches in all.
  "$mpirun" -n 2 "$mlp" "${common[@]}" --epochs="$epoch" --log_every=0 --save= \
    --resume=mnist_mlp_interrupted.safetensors > resume.log 2>&1 || fail "the resumed run failed"
  grep -q "resumed from mnist_mlp_interrupted.safetensors at epoch [0-9]*, step [0-9]* (inside" \
    resume.log || fail "not resumed inside the epoch"
  grep -q "RESULT.*ranks=2" resume.log || fail "no RESULT line"
  grep -q "trained $((468 - batch)) steps" resume.log || fail "did not train the epoch's last $((468 - batch)) steps"
  ;;
aot_binaries)
  # A two-phase AOT binary trains over two ranks; a one-pipeline one is refused before it loads
  # any data.
  aot=$(dirname "$mlp")/aot
  common=(--data_dir="$data" --progress=false --plot=)
  "$mpirun" -n 2 "$aot/mnist_cnn_two_phase" "${common[@]}" --epochs=1 --max_steps=30 \
    --log_every=10 --save= > two.log 2>&1 || fail "the two-phase AOT binary failed over 2 ranks"
  grep -q "RESULT example=mnist_cnn_two_phase .*ranks=2" two.log || fail "no RESULT with ranks=2"
  "$mpirun" -n 2 "$aot/mnist_cnn_train" "${common[@]}" --epochs=1 > one.log 2>&1 &&
    fail "the one-pipeline AOT binary ran over 2 ranks"
  grep -q "mnist_cnn_train has a one-pipeline training step" one.log || fail "no clear refusal"
  grep -q "MNIST:" one.log && fail "the refusal came after loading the data"
  ;;
resume_at_another_rank_count)
  # Two ranks train one epoch and checkpoint; one process continues with a second.
  # --plot: every rank evaluates the test set after each epoch (rank 0 draws the curve).
  "$mpirun" -n 2 "$mlp" "${common[@]}" --epochs=1 --log_every=0 --checkpoint=ck.safetensors \
    --lr_schedule=constant --save=final.safetensors --log_json=log.json --plot=curve \
    > two.log 2>&1 || fail "the two-rank run failed"
  grep -q "ranks=2" two.log || fail "no ranks=2 on the RESULT line"
  grep -q "epoch 1: test accuracy" two.log || fail "no per-epoch test accuracy"
  [ "$(ls | grep -v '^curve_')" = "$(printf 'ck.safetensors\nfinal.safetensors\nlog.json\ntwo.log')" ] ||
    fail "expected only rank 0's files, found: $(ls | tr '\n' ' ')"
  ls curve_* > /dev/null 2>&1 || fail "no plot"
  [ "$(grep -c '"event":"epoch"' log.json)" = 1 ] || fail "log.json has not one epoch line: $(cat log.json)"
  "$mlp" "${common[@]}" --epochs=2 --log_every=0 --resume=ck.safetensors --lr_schedule=constant \
    --min_accuracy=0.9 > one.log 2>&1 || fail "the one-process continuation failed"
  grep -q "resumed from ck.safetensors at epoch 1" one.log || fail "not resumed at epoch 1"
  grep -q "RESULT.*ranks=1" one.log || fail "no RESULT with ranks=1"
  ;;
*) echo "FAIL: unknown case $case_name"; exit 1 ;;
esac
echo PASS
