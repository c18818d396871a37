#!/usr/bin/env bash
# The UCI-EMG experiment behind RESULTS.md: pretrain on the training subjects' windows, fine-tune,
# compare with from-scratch training at the same budget, on two splits, plus the RoPE ablation.
# Usage: bash experiments/uci_results.sh [stage ...]   (stages: build pretrain subject pooled
#   ablation ablation_pretrained)
# Pretraining here standardizes inputs with training-split channel statistics, as fine-tuning
# does (the paper's per-window min-max would erase the relative channel levels).
# Every stage appends "<stage> <seconds>" to $OUT/times.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/uci_exp}
DATA=${DATA:-data/tfds_uci_full}
MANUAL=${MANUAL:-../shared/data/uci_emg}
PRE_STEPS=${PRE_STEPS:-600}          # 19,200 windows at batch 32 (~1.2 passes over hz200_all)
PRE_CONFIG=${PRE_CONFIG:-hz200_all}  # every 1 s window of the recordings, stride 0.1 s
FT_EPOCHS=${FT_EPOCHS:-10}
SEEDS=${SEEDS:-3}
SRC="--config.data.sources=(('uci_emg','$PRE_CONFIG',1.0),)"
mkdir -p "$OUT"

timed() { local name=$1; shift; local t0=$SECONDS; "$@"; echo "$name $((SECONDS - t0))" >> "$OUT/times.txt"; }

pretrain() {  # $1 = workdir, $2 = rope mode, $3 = train split
  $PY -m tinymyo_jax.main --config=configs/pretrain.py:default --workdir="$1" \
    --config.data.data_dir="$DATA" "$SRC" --config.data.train_split="$3" \
    --config.model.rope_mode="$2" --config.total_steps="$PRE_STEPS" --config.batch_size=32 \
    --config.data.normalization=standardize \
    --config.optimizer.peak_lr=5e-4 --config.optimizer.warmup_steps=30 --config.log_every=10 \
    --config.eval_every=120 --config.checkpoint_every=120 --config.eval_batches=4
}

finetune() {  # $1 = task, $2 = workdir, $3 = init checkpoint ("" = scratch), $4 = rope mode
  $PY -m tinymyo_jax.main --config=configs/finetune.py:"$1" --workdir="$2" \
    --config.data.data_dir="$DATA" --config.init_from="$3" --config.model.rope_mode="$4" \
    --config.finetune.num_epochs="$FT_EPOCHS" --config.finetune.warmup_epochs=1 \
    --config.finetune.seeds="$SEEDS"
}

stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(build pretrain subject pooled ablation ablation_pretrained)
for stage in "${stages[@]}"; do
  case $stage in
    build)
      for config in hz200 "$PRE_CONFIG"; do
        timed "build_$config" $PY -m data_builders.build uci_emg --manual_dir="$MANUAL" \
          --data_dir="$DATA" --config="$config"
      done ;;
    pretrain) timed pretrain_subject pretrain "$OUT/pretrain_time" time train ;;
    subject)
      timed ft_subject_pretrained finetune uci_200hz "$OUT/ft_subject_pretrained" \
        "$OUT/pretrain_time/checkpoints" time
      timed ft_subject_scratch finetune uci_200hz "$OUT/ft_subject_scratch" "" time ;;
    pooled)
      timed pretrain_pooled pretrain "$OUT/pretrain_pooled" time \
        "train+validation+test|repetition=1"
      timed ft_pooled_pretrained finetune uci_200hz_pooled "$OUT/ft_pooled_pretrained" \
        "$OUT/pretrain_pooled/checkpoints" time
      timed ft_pooled_scratch finetune uci_200hz_pooled "$OUT/ft_pooled_scratch" "" time ;;
    ablation)
      for mode in released flat; do
        timed "ft_subject_scratch_$mode" finetune uci_200hz "$OUT/ft_subject_scratch_$mode" "" "$mode"
      done ;;
    ablation_pretrained)
      for mode in released flat; do
        timed "pretrain_subject_$mode" pretrain "$OUT/pretrain_$mode" "$mode" train
        timed "ft_subject_pretrained_$mode" finetune uci_200hz \
          "$OUT/ft_subject_pretrained_$mode" "$OUT/pretrain_$mode/checkpoints" "$mode"
      done ;;
    *) echo "unknown stage $stage"; exit 2 ;;
  esac
done
