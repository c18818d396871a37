#!/usr/bin/env bash
# The UCI-EMG experiment behind RESULTS.md: pretrain on the training subjects' windows, fine-tune,
# compare with from-scratch training at the same budget, on two splits, plus the RoPE ablation.
# Usage: [SPLIT=paper|fold0..fold4] bash experiments/uci_results.sh [stage ...]   (stages: build pretrain subject pooled
#   ablation ablation_pretrained probe probe_pooled lpft lpft_pooled subject_scratch
#   pretrain_pooled db5 ablation_probe subject_pretrained cv)
# "probe" stages train the classifier head on a frozen encoder (linear probing,
# finetune.freeze_backbone=True); "lpft" fine-tunes everything starting from each probe's
# checkpoint (head included); "db5" adds the two real NinaPro DB5 recordings in ../shared (two
# other people, two 8-channel Myo armbands each) to the pretraining data. "cv" runs the
# grouped 5-fold cross-validation: per fold, pretraining on that fold's training subjects only,
# then full fine-tuning (one seed), into $OUT/cv/{pretrain,uci_ft}_fold<k> (`cv_table.py --runs`).
# Pretraining here standardizes inputs with training-split channel statistics, as fine-tuning
# does (the paper's per-window min-max would erase the relative channel levels).
# Every run appends "<name> <seconds>" to $OUT/times.txt; a run whose summary.json exists is
# skipped (re-running never redoes finished work).
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
PROBE_LR=${PROBE_LR:-5e-4}           # peak LR of the linear probe (the head alone)
DTYPE=${DTYPE:-auto}                 # compute dtype of every run: auto = bf16 (fp32 params and
                                     # loss) where the CPU has native bf16 dots, else fp32
SPLIT=${SPLIT:-}                     # a named subject split (configs/finetune.py UCI_SPLITS):
                                     # "" = the builder's, paper (36-subject copy), fold0..fold4
TASK="uci_200hz${SPLIT:+,$SPLIT}"
# The pretraining windows come from the training subjects of that split (never its validation or
# test subjects): the split expression of configs/finetune.py's UCI_SPLITS.
read -r TRAIN_SPLIT EVAL_SPLIT < <($PY -c "from configs import finetune
print(*finetune.UCI_SPLITS['${SPLIT:-copy}'][:2])")
POOLED_EVAL="train+validation+test|repetition=2,session=1"  # uci_200hz_pooled's validation
DB5_MANUAL=${DB5_MANUAL:-../shared/data/ninapro_samples/db5}
SRC="--config.data.sources=(('uci_emg','$PRE_CONFIG',1.0),)"
# DB5 by_subject puts both shared subjects (1, 5) in "train"; each 16-channel window gives two
# 8-channel ones (channel_group 8); training-only source (own split, left out of evaluation).
SRC_DB5="--config.data.sources=(('uci_emg','$PRE_CONFIG',1.0),('ninapro_db5','by_subject',0.6,8,'train'))"
mkdir -p "$OUT"

source experiments/lib.sh   # once, timed, finetune, probe

pretrain() {  # $1 = workdir, $2 = rope mode, $3 = train split, [$4 = sources flag]
  $PY -m tinymyo_jax.main --config=configs/pretrain.py:default --workdir="$1" \
    --config.data.data_dir="$DATA" "${4:-$SRC}" --config.data.train_split="$3" \
    --config.data.eval_split="$EVAL_SPLIT" \
    --config.model.rope_mode="$2" --config.model.dtype="$DTYPE" \
    --config.total_steps="$PRE_STEPS" --config.batch_size=32 \
    --config.data.normalization=standardize \
    --config.optimizer.peak_lr=5e-4 --config.optimizer.warmup_steps=30 --config.log_every=10 \
    --config.eval_every=120 --config.checkpoint_every=120 --config.eval_batches=4
}

lpft() {  # $1 = task, $2 = probe workdir, $3 = workdir: one run per seed, each from its probe
  for ((k = 0; k < SEEDS; k++)); do
    once "$3/seed_$k" timed "$(basename "$3")_seed$k" finetune "$1" "$3/seed_$k" \
      "$2/seed_$k/best" time --config.seed=$((42 + k)) --config.finetune.seeds=1
  done
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
    pretrain) once "$OUT/pretrain_time" timed pretrain_subject pretrain \
      "$OUT/pretrain_time" time "$TRAIN_SPLIT" ;;
    subject)
      once "$OUT/ft_subject_pretrained" timed ft_subject_pretrained finetune \
        "$TASK" "$OUT/ft_subject_pretrained" "$OUT/pretrain_time/checkpoints" time
      once "$OUT/ft_subject_scratch" timed ft_subject_scratch finetune \
        "$TASK" "$OUT/ft_subject_scratch" "" time ;;
    pooled)
      EVAL_SPLIT="$POOLED_EVAL" once "$OUT/pretrain_pooled" timed pretrain_pooled pretrain \
        "$OUT/pretrain_pooled" time "train+validation+test|repetition=1"
      once "$OUT/ft_pooled_pretrained" timed ft_pooled_pretrained finetune \
        uci_200hz_pooled "$OUT/ft_pooled_pretrained" "$OUT/pretrain_pooled/checkpoints" time
      once "$OUT/ft_pooled_scratch" timed ft_pooled_scratch finetune \
        uci_200hz_pooled "$OUT/ft_pooled_scratch" "" time ;;
    ablation)
      for mode in released flat; do
        once "$OUT/ft_subject_scratch_$mode" timed "ft_subject_scratch_$mode" finetune \
          "$TASK" "$OUT/ft_subject_scratch_$mode" "" "$mode"
      done ;;
    ablation_pretrained)
      for mode in released flat; do
        once "$OUT/pretrain_$mode" timed "pretrain_subject_$mode" pretrain \
          "$OUT/pretrain_$mode" "$mode" "$TRAIN_SPLIT"
        once "$OUT/ft_subject_pretrained_$mode" timed "ft_subject_pretrained_$mode" finetune \
          "$TASK" "$OUT/ft_subject_pretrained_$mode" "$OUT/pretrain_$mode/checkpoints" "$mode"
      done ;;
    probe)
      once "$OUT/lp_subject_pretrained" timed lp_subject_pretrained probe \
        "$TASK" "$OUT/lp_subject_pretrained" "$OUT/pretrain_time/checkpoints" time
      once "$OUT/lp_subject_scratch" timed lp_subject_scratch probe \
        "$TASK" "$OUT/lp_subject_scratch" "" time ;;
    probe_pooled)
      once "$OUT/lp_pooled_pretrained" timed lp_pooled_pretrained probe \
        uci_200hz_pooled "$OUT/lp_pooled_pretrained" "$OUT/pretrain_pooled/checkpoints" time ;;
    lpft) lpft "$TASK" "$OUT/lp_subject_pretrained" "$OUT/lpft_subject_pretrained" ;;
    lpft_pooled)
      lpft uci_200hz_pooled "$OUT/lp_pooled_pretrained" "$OUT/lpft_pooled_pretrained" ;;
    subject_pretrained)
      once "$OUT/ft_subject_pretrained" timed ft_subject_pretrained finetune \
        "$TASK" "$OUT/ft_subject_pretrained" "$OUT/pretrain_time/checkpoints" time ;;
    cv)  # each fold in its own run of this script: the split sets TRAIN_SPLIT / EVAL_SPLIT
      for k in 0 1 2 3 4; do
        [ -f "$OUT/cv/uci_ft_fold$k/summary.json" ] && { echo "done already: fold $k"; continue; }
        SPLIT=fold$k SEEDS=1 OUT="$OUT/cv/fold$k" bash "$0" pretrain subject_pretrained
        mv "$OUT/cv/fold$k/pretrain_time" "$OUT/cv/pretrain_fold$k"
        mv "$OUT/cv/fold$k/ft_subject_pretrained" "$OUT/cv/uci_ft_fold$k"
      done ;;
    subject_scratch)
      once "$OUT/ft_subject_scratch" timed ft_subject_scratch finetune \
        "$TASK" "$OUT/ft_subject_scratch" "" time ;;
    pretrain_pooled)
      EVAL_SPLIT="$POOLED_EVAL" once "$OUT/pretrain_pooled" timed pretrain_pooled pretrain \
        "$OUT/pretrain_pooled" time "train+validation+test|repetition=1" ;;
    db5)
      timed build_db5 $PY -m data_builders.build ninapro_db5 --manual_dir="$DB5_MANUAL" \
        --data_dir="$DATA" --config=by_subject
      once "$OUT/pretrain_time_db5" timed pretrain_subject_db5 pretrain \
        "$OUT/pretrain_time_db5" time "$TRAIN_SPLIT" "$SRC_DB5"
      once "$OUT/lp_subject_pretrained_db5" timed lp_subject_pretrained_db5 probe \
        "$TASK" "$OUT/lp_subject_pretrained_db5" "$OUT/pretrain_time_db5/checkpoints" time ;;
    ablation_probe)
      for mode in released flat; do
        once "$OUT/pretrain_$mode" timed "pretrain_subject_$mode" pretrain \
          "$OUT/pretrain_$mode" "$mode" "$TRAIN_SPLIT"
        once "$OUT/lp_subject_pretrained_$mode" timed "lp_subject_pretrained_$mode" probe \
          "$TASK" "$OUT/lp_subject_pretrained_$mode" "$OUT/pretrain_$mode/checkpoints" "$mode"
      done ;;
    *) echo "unknown stage $stage"; exit 2 ;;
  esac
done
