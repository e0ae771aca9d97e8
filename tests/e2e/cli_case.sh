#!/usr/bin/env bash
# What a user types wrong at the command line, and what must never happen to their files: one case
# per ctest entry. Each case checks the exit status and the message, and that bad input is refused
# before anything is compiled.
#   cli_case.sh CASE SOFTMAX_BIN CNN_BIN AOT_BIN DATA_DIR WORK_DIR SOURCE_DIR
set -uo pipefail
case_name=$1 softmax=$2 cnn=$3 aot=$4 data=$5 work=$6/$1 src=$7
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
quiet=(--data_dir="$data" --progress=false --log_every=0 --plot=)

fail() {
  echo "FAIL: $*"
  exit 1
}

# expect RC REGEX CMD...: the command exits with RC, its output matches REGEX (extended), and it
# stopped before compiling a step.
expect() {
  local want_rc=$1 regex=$2
  shift 2
  "$@" >out.txt 2>&1
  local rc=$?
  [ "$rc" -eq "$want_rc" ] || { cat out.txt; fail "exit status $rc, expected $want_rc: $*"; }
  grep -Eq -- "$regex" out.txt || { cat out.txt; fail "no match for '$regex': $*"; }
  if [ "$want_rc" -ne 0 ] && [ -z "${AFTER_COMPILE:-}" ]; then
    ! grep -q "step (batch [0-9]*) \(compiled in\|loaded from\)" out.txt || fail "compiled first: $*"
  fi
  echo "ok: $* -> $(grep -E -- "$regex" out.txt | head -1)"
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

case $case_name in
  unknown_flag)
    expect 1 "error: unknown flag --lrr; did you mean --lr\?" "$softmax" --lrr=0.1
    expect 1 "error: unknown flag --epoch; did you mean --epochs\?" "$softmax" --epoch=3
    expect 1 "error: unknown flag --colour \(--help lists the flags\)" "$softmax" --colour=red
    expect 1 "error: unexpected argument '5' \(flags take the form --name=value\)" "$softmax" 5
    ;;
  numbers_out_of_range)
    expect 1 "--batch_size must be in \[1, 60000\] \(the training examples\), got 70000" \
      "$softmax" "${quiet[@]}" --batch_size=70000
    for lr in -0.1 0 nan inf; do
      expect 1 "--lr \(the base learning rate\) must be in \(0, inf\), got" \
        "$softmax" "${quiet[@]}" --lr=$lr
    done
    expect 1 "--epochs must be >= 0, got -1" "$softmax" "${quiet[@]}" --epochs=-1
    expect 1 "EVERY_EPOCHS of step:EVERY_EPOCHS:GAMMA must be >= 1, got 0" \
      "$softmax" "${quiet[@]}" --lr_schedule=step:0:0.5
    expect 1 "warm-up of 20000 steps must be in \[0, 9370\]" \
      "$softmax" "${quiet[@]}" --lr_schedule=cosine,warmup:20000
    expect 1 "--random_shift must be in \[0, 27\] for \[28, 28\] images, got 28" \
      "$softmax" "${quiet[@]}" --random_shift=28
    expect 1 "--min_accuracy must be in \[0, 1\], got 99" "$softmax" "${quiet[@]}" --min_accuracy=99
    expect 1 "--weight_decay must be finite and >= 0" "$softmax" "${quiet[@]}" --weight_decay=-1
    # A schedule that decays to 0 is fine.
    expect 0 "RESULT example=mnist_softmax" "$softmax" "${quiet[@]}" --epochs=1 --max_steps=20 \
      --lr_schedule=cosine:0 --save=
    ;;
  paths_checked_before_training)
    expect 1 "--predict=no_digit.png: cannot open" "$softmax" "${quiet[@]}" --predict=no_digit.png
    expect 1 "--load=no.safetensors: cannot open" "$softmax" "${quiet[@]}" --load=no.safetensors
    expect 1 "--resume=no.safetensors: cannot open" "$softmax" "${quiet[@]}" --resume=no.safetensors
    expect 1 "--import=no.safetensors: cannot open" "$softmax" "${quiet[@]}" \
      --import=no.safetensors --import_map="$src/tests/data/torch_cnn.map"
    expect 1 "--import needs --import_map" "$softmax" "${quiet[@]}" --import=x.safetensors
    expect 1 "NOT_FOUND: .*no_such_dir/train-images-idx3-ubyte: cannot open" \
      "$softmax" --data_dir=no_such_dir
    expect 1 "--save=missing/w.safetensors: the directory 'missing' does not exist" \
      "$softmax" "${quiet[@]}" --save=missing/w.safetensors
    expect 1 "--checkpoint=missing/c.safetensors: the directory 'missing' does not exist" \
      "$softmax" "${quiet[@]}" --checkpoint=missing/c.safetensors
    expect 1 "--plot=missing/loss: the directory 'missing' does not exist" \
      "$softmax" "${quiet[@]}" --plot=missing/loss
    printf 'epoch,loss\n1,0.5\n' >not_a_checkpoint.safetensors
    # Its content is read with the steps' parameters at hand (after compiling), before training.
    AFTER_COMPILE=1 expect 1 "not_a_checkpoint.safetensors: not a safetensors file" \
      "$softmax" "${quiet[@]}" --eval_only --load=not_a_checkpoint.safetensors --save=
    ;;
  untrained_runs_never_overwrite)
    # A trained checkpoint at the default path (<program>.safetensors in the working directory).
    "$softmax" "${quiet[@]}" --epochs=1 >train.txt 2>&1 || { cat train.txt; fail "training"; }
    before=$(sha mnist_softmax.safetensors)
    # With the default --plot too: an untrained run draws no loss curve either.
    expect 0 "not saving parameters: nothing was trained or loaded" \
      "$softmax" --data_dir="$data" --progress=false --epochs=0
    [ "$(sha mnist_softmax.safetensors)" = "$before" ] || fail "--epochs=0 overwrote the checkpoint"
    expect 0 "not saving parameters: nothing was trained or loaded" "$softmax" "${quiet[@]}" --eval_only
    [ "$(sha mnist_softmax.safetensors)" = "$before" ] || fail "--eval_only overwrote the checkpoint"
    expect 0 "not saving parameters: nothing was trained \(give --save=FILE" \
      "$softmax" "${quiet[@]}" --eval_only --load=mnist_softmax.safetensors
    expect 0 "test_accuracy=0\.9" "$softmax" "${quiet[@]}" --eval_only --load=mnist_softmax.safetensors
    [ "$(sha mnist_softmax.safetensors)" = "$before" ] || fail "an evaluation overwrote the checkpoint"
    expect 0 "saved parameters to copy.safetensors" \
      "$softmax" "${quiet[@]}" --eval_only --load=mnist_softmax.safetensors --save=copy.safetensors
    ! ls mnist_softmax_loss* 2>/dev/null | grep -q . || fail "an untrained run wrote a plot"
    ;;
  aot_flags_compiled_in)
    expect 1 "--batch_size: the training batch is compiled into mnist_cnn_train: 64" \
      "$aot" --batch_size=32
    expect 1 "--optimizer: the optimizer is compiled into mnist_cnn_train" "$aot" --optimizer=sgd
    expect 1 "did you mean --epochs\?" "$aot" --epoc=2
    ;;
  help_shows_no_build_paths)
    for bin in "$softmax" "$aot"; do
      "$bin" --help >help.txt 2>&1
      grep -q -- "--lr_schedule" help.txt || fail "$bin --help lists no flags"
      grep -q "Flags from the training driver" help.txt || fail "$bin --help has no driver group"
      ! grep -q "$src\|/build/\|\.cc" help.txt || { cat help.txt; fail "$bin --help shows paths"; }
    done
    echo "ok: --help names flag groups, no paths"
    ;;
  sigint_checkpoint_resumes_bit_exactly)
    common=("${quiet[@]}" --log_every=100 --epochs=1 --batch_size=64)
    "$cnn" "${common[@]}" --save=straight.safetensors >straight.txt 2>&1 || fail "straight run"
    "$cnn" "${common[@]}" --save=resumed.safetensors --checkpoint=ckpt.safetensors \
      --log_json=log.jsonl >interrupted.txt 2>&1 &
    pid=$!
    for _ in $(seq 1200); do
      grep -q "batch_id: 100," interrupted.txt && break
      sleep 0.05
    done
    kill -INT $pid
    wait $pid
    rc=$?
    [ "$rc" -eq 130 ] || { cat interrupted.txt; fail "exit status $rc after SIGINT, expected 130"; }
    grep -q "interrupted (SIGINT) in epoch 1 at batch [0-9]*.*continue with --resume=ckpt.safetensors" \
      interrupted.txt || { cat interrupted.txt; fail "no interruption message"; }
    [ ! -e resumed.safetensors ] || fail "an interrupted run wrote its final parameters"
    grep -q '"event":"step","epoch":1,"batch":100,' log.jsonl || fail "no JSON line for batch 100"
    expect 0 "resumed from ckpt.safetensors at epoch 0, step [0-9]+ \(inside epoch 1, at batch [0-9]+\)" \
      "$cnn" "${common[@]}" --save=resumed.safetensors --resume=ckpt.safetensors \
      --log_json=log.jsonl
    grep -q '"event":"epoch","epoch":1,' log.jsonl || fail "no JSON line for the epoch"
    cmp straight.safetensors resumed.safetensors || fail "the resumed run differs"
    echo "ok: interrupted, checkpointed, resumed bit-exactly"
    ;;
  *)
    fail "unknown case $case_name"
    ;;
esac
echo PASS
