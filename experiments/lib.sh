# Shell functions shared by the experiment scripts (sourced, not run). Callers set PY, OUT, DATA,
# FT_EPOCHS, SEEDS, PROBE_LR (and optionally DTYPE, default auto) before calling them.

once() {  # $1 = workdir, then a command: skipped when the workdir has its summary.json
  local workdir=$1; shift
  if [ -f "$workdir/summary.json" ]; then echo "done already: $workdir"; else "$@"; fi
}

timed() {  # $1 = name, then a command: runs it and appends "<name> <seconds>" to $OUT/times.txt
  local name=$1; shift; local t0=$SECONDS; "$@"; echo "$name $((SECONDS - t0))" >> "$OUT/times.txt"
}

finetune() {  # $1 = task, $2 = workdir, $3 = init checkpoint ("" = scratch), $4 = rope mode,
              # then extra flags
  local task=$1 workdir=$2 init=$3 mode=$4; shift 4
  $PY -m tinymyo_jax.main --config=configs/finetune.py:"$task" --workdir="$workdir" \
    --config.data.data_dir="$DATA" --config.init_from="$init" --config.model.rope_mode="$mode" \
    --config.model.dtype="${DTYPE:-auto}" \
    --config.finetune.num_epochs="$FT_EPOCHS" --config.finetune.warmup_epochs=1 \
    --config.finetune.seeds="$SEEDS" "$@"
}

# Linear probing: the head alone on the frozen encoder's features (no backward pass through
# the encoder: 4.8x the examples/s of a full step, BENCHMARKS.md), at its own learning rate.
probe() {
  finetune "$@" --config.finetune.freeze_backbone=True --config.optimizer.peak_lr="$PROBE_LR"
}
