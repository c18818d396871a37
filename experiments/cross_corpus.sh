#!/usr/bin/env bash
# Cross-corpus pretraining on other people's EMG (the four Myo-armband corpora, no UCI recording),
# then UCI-EMG and Myo-corpus fine-tuning against scratch training and classical baselines.
# Usage: [SPLIT=paper|fold0..fold4|pooled] [OUT=...] [DATA=...] bash experiments/cross_corpus.sh [stage ...]
#   build       every Myo corpus (`all` + labeled configs) and UCI hz200 / hz200_all into $DATA
#   pretrain    configs/pretrain.py:myo for $PRE_STEPS steps into $OUT/pretrain_myo, masked
#               patches reconstructed as $PRE_TARGET (signal, or spectrum: use another $OUT)
#   uci         UCI $TASK, the rows of $UCI_ROWS (default "ft lp"; the rows of `cv` below; lpft and
#               lpft_aug need SEEDS=1) from pretrain_myo
#   uci_aug     UCI $TASK with armband-rotation + amplitude + time-shift augmentation ($AUG):
#               from pretrain_myo and from scratch (the same budget)
#   pretrain_heldout  configs/pretrain.py:myo_heldout (no myo_readings / MyoArmband test window) into
#               $OUT/pretrain_myo_heldout, the same budget as `pretrain`
#   myo_tasks   $MYO_TASKS: myo_readings across participants ($MYO_READINGS_STEPS steps, half an
#               epoch of its 60k windows), MyoArmband within person (cycle split) and the other
#               Myo tasks (myodisco, ciil: $FT_EPOCHS epochs each), one seed, the rows of
#               $MYO_ROWS (those of `cv`) from pretrain_myo_heldout
#   uci_aug_each  UCI $TASK with each augmentation of $AUG alone, from pretrain_myo; then
#               scratch with the one validation chose (time shift, $AUG_CHOSEN)
#   uci_long    UCI $TASK with the paper's schedule: up to 50 epochs, 5 warm-up epochs, early
#               stopping on validation loss (patience 7): from pretrain_myo and from scratch
#   cv          grouped 5-fold cross-validation over the UCI subjects, one seed per fold, the
#               rows of $CV_ROWS: ft (pretrained full fine-tuning), lp (linear probe), scratch
#               (the same budget), lp_long (a probe of $PROBE_LONG_EPOCHS epochs), lpft (full
#               fine-tuning from the fold's lp probe at peak LR $LPFT_LR), lpft_aug (lpft with
#               the augmentation validation chose, $AUG_CHOSEN), lr (logistic-regression probe
#               of the lp run's frozen encoder, L2 chosen on validation; --layers $LR_LAYERS),
#               lpft_lr (lpft from the lr probe's folded head)
#   cv_aug      the same folds with $AUG: pretrained full fine-tuning and scratch
#   baselines   LDA and random forest on the windows and splits of every task above
# Every stage appends "<name> <seconds>" to $OUT/times.txt; a stage whose summary.json exists is
# skipped (re-running never redoes finished work).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/cross_corpus}
DATA=${DATA:-data/tfds_myo}
SHARED=${SHARED:-../shared/data}
PRE_STEPS=${PRE_STEPS:-1200}         # 38,400 windows at batch 32 (~0.35 passes over the mixture)
PRE_TARGET=${PRE_TARGET:-signal}     # config.pretrain.target
FT_EPOCHS=${FT_EPOCHS:-10}
SEEDS=${SEEDS:-3}
PROBE_LR=${PROBE_LR:-5e-4}
DTYPE=${DTYPE:-auto}                 # bf16 compute where the CPU has native bf16 dots, else fp32
SPLIT=${SPLIT:-}
TASK="uci_200hz${SPLIT:+,$SPLIT}"
[ "$SPLIT" != pooled ] || TASK=uci_200hz_pooled   # subjects pooled, split by repetition
AUG=${AUG:-"--config.data.augment.rotate=1 --config.data.augment.scale=0.2 --config.data.augment.jitter=20"}
AUG_CHOSEN=${AUG_CHOSEN:-jitter=20}   # uci_aug_each: best validation loss of the three, seed 42
UCI_ROWS=${UCI_ROWS:-"ft lp"}
CV_ROWS=${CV_ROWS:-"ft lp scratch"}
PROBE_LONG_EPOCHS=${PROBE_LONG_EPOCHS:-30}
LPFT_LR=${LPFT_LR:-1e-4}             # a fifth of the recipe's: move the probed features little
LR_LAYERS=${LR_LAYERS:-last}         # the lr row: the encoder's output (all: every layer too)
MYO_READINGS_STEPS=${MYO_READINGS_STEPS:-940}   # 30,080 windows at batch 32 (half an epoch)
MYO_TASKS=${MYO_TASKS:-"myo_readings myoarmband"}
MYO_ROWS=${MYO_ROWS:-"ft lp scratch"}   # the rows of `cv` below, from pretrain_myo_heldout
PRE="$OUT/pretrain_myo"
PRE_HELD="$OUT/pretrain_myo_heldout"
mkdir -p "$OUT"
source experiments/lib.sh   # once, timed, finetune, probe

build() {  # $1 = corpus, $2 = manual dir, then configs
  local name=$1 manual=$2; shift 2
  for config in "$@"; do
    timed "build_${name}_$config" $PY -m data_builders.build "$name" --manual_dir="$manual" \
      --data_dir="$DATA" --config="$config"
  done
}

run_row() {  # $1 = row, $2 = task, $3 = workdir, $4 = the probe's workdir (lpft rows start there),
            # then extra flags for the network rows; pretrained rows start from $INIT
  local row=$1 task=$2 dir=$3 lp=$4; shift 4
  local run=(finetune "$task" "$dir" "${INIT:-$PRE/checkpoints}" time)
  local lr=${lp%/lp_*}/lr_${lp##*/lp_}   # the logistic-regression probe beside the lp run
  case $row in
    lr) run=($PY experiments/layer_probe.py --ckpt "$lp/seed_0/best" --task "$task"
             --data_dir "$DATA" --workdir "$dir" --layers "$LR_LAYERS") ;;
    ft) ;;
    lp) run[0]=probe ;;
    scratch) run[3]="" ;;
    lp_long) run[0]=probe; run+=(--config.finetune.num_epochs="$PROBE_LONG_EPOCHS") ;;
    lpft|lpft_aug|lpft_lr)
      [ "$SEEDS" = 1 ] || { echo "the $row row starts from one probe: it needs SEEDS=1 (got $SEEDS)"; exit 2; }
      run[3]="$lp/seed_0/best"; [ $row != lpft_lr ] || run[3]="$lr/head"
      run+=(--config.optimizer.peak_lr="$LPFT_LR")
      [ $row != lpft_aug ] || run+=(--config.data.augment."$AUG_CHOSEN") ;;
    *) echo "unknown row $row (rows: ft lp scratch lp_long lpft lpft_aug lr lpft_lr)"; exit 2 ;;
  esac
  [ $row = lr ] || run+=("$@")
  once "$dir" timed "${dir#"$OUT"/}" "${run[@]}"
}

stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(build pretrain uci uci_aug baselines)
for stage in "${stages[@]}"; do
  case $stage in
    build)
      build myoarmband "$SHARED/myoarmband" all cycle
      build myo_readings "$SHARED/myo_readings" all default
      build myodisco "$SHARED/myodisco" all cross_day
      build ciil "$SHARED/ciil" all electrode_shift
      build uci_emg "$SHARED/uci_emg" hz200 hz200_all ;;
    pretrain|pretrain_heldout)
      preset=myo; workdir=$PRE
      [ "$stage" = pretrain ] || { preset=myo_heldout; workdir=$PRE_HELD; }
      once "$workdir" timed "pretrain_$preset" $PY -m tinymyo_jax.main \
        --config=configs/pretrain.py:$preset --workdir="$workdir" \
        --config.data.data_dir="$(realpath "$DATA")" \
        --config.total_steps="$PRE_STEPS" --config.optimizer.warmup_steps=60 \
        --config.model.dtype="$DTYPE" --config.pretrain.target="$PRE_TARGET" \
        --config.eval_every=200 --config.checkpoint_every=200 ;;
    myo_tasks)
      # One seed each. myo_readings by steps: one epoch is ~30 min per run on this CPU.
      steps=$((MYO_READINGS_STEPS / 4))
      budget=(--config.total_steps="$MYO_READINGS_STEPS" --config.optimizer.warmup_steps="$steps"
              --config.eval_every="$steps" --config.checkpoint_every="$steps")
      for task in $MYO_TASKS; do
        extra=()
        [ $task != myo_readings ] || extra=("${budget[@]}")
        for row in $MYO_ROWS; do
          SEEDS=1 INIT="$PRE_HELD/checkpoints" run_row "$row" $task "$OUT/myo_tasks/${row}_$task" \
            "$OUT/myo_tasks/lp_$task" ${extra[@]+"${extra[@]}"}
        done
      done ;;
    uci)
      for row in $UCI_ROWS; do run_row "$row" "$TASK" "$OUT/${row}_$TASK" "$OUT/lp_$TASK"; done ;;
    uci_aug)
      # shellcheck disable=SC2086  # $AUG is a list of flags
      once "$OUT/ft_aug_$TASK" timed "ft_aug_$TASK" finetune "$TASK" "$OUT/ft_aug_$TASK" \
        "$PRE/checkpoints" time $AUG
      # shellcheck disable=SC2086
      once "$OUT/scratch_aug_$TASK" timed "scratch_aug_$TASK" finetune "$TASK" \
        "$OUT/scratch_aug_$TASK" "" time $AUG ;;
    uci_aug_each)
      for flag in $AUG; do   # --config.data.augment.<name>=<value>
        aug=${flag#--config.data.augment.}
        name=ft_aug_${aug%%=*}_$TASK
        once "$OUT/$name" timed "$name" finetune "$TASK" "$OUT/$name" "$PRE/checkpoints" time \
          "$flag"
      done
      name=scratch_aug_${AUG_CHOSEN%%=*}_$TASK
      once "$OUT/$name" timed "$name" finetune "$TASK" "$OUT/$name" "" time \
        --config.data.augment.$AUG_CHOSEN ;;
    uci_long)
      long=(--config.finetune.num_epochs=50 --config.finetune.warmup_epochs=5)
      once "$OUT/ft_long_$TASK" timed "ft_long_$TASK" finetune "$TASK" "$OUT/ft_long_$TASK" \
        "$PRE/checkpoints" time "${long[@]}"
      once "$OUT/scratch_long_$TASK" timed "scratch_long_$TASK" finetune "$TASK" \
        "$OUT/scratch_long_$TASK" "" time "${long[@]}" ;;
    cv_aug)
      for k in 0 1 2 3 4; do
        # shellcheck disable=SC2086  # $AUG is a list of flags
        once "$OUT/cv/ft_aug_fold$k" timed "cv_ft_aug_fold$k" finetune "uci_200hz,fold$k" \
          "$OUT/cv/ft_aug_fold$k" "$PRE/checkpoints" time --config.finetune.seeds=1 $AUG
        # shellcheck disable=SC2086
        once "$OUT/cv/scratch_aug_fold$k" timed "cv_scratch_aug_fold$k" finetune \
          "uci_200hz,fold$k" "$OUT/cv/scratch_aug_fold$k" "" time --config.finetune.seeds=1 $AUG
      done ;;
    cv)
      # One seed per fold; the recipe of the documented split (no augmentation: rejected there).
      for k in 0 1 2 3 4; do
        for row in $CV_ROWS; do
          SEEDS=1 run_row "$row" "uci_200hz,fold$k" "$OUT/cv/${row}_fold$k" "$OUT/cv/lp_fold$k"
        done
      done ;;
    baselines)
      for task in uci_200hz uci_200hz_pooled uci_200hz,fold0 uci_200hz,fold1 uci_200hz,fold2 \
                  uci_200hz,fold3 uci_200hz,fold4 myo_readings myoarmband myodisco ciil; do
        timed "baselines_$task" $PY experiments/classical_baselines.py --task "$task" \
          --data_dir="$DATA" --out="$OUT/baselines/${task/,/_}.json"
      done ;;
    *) echo "unknown stage $stage"; exit 2 ;;
  esac
done
