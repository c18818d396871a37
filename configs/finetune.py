"""Fine-tuning configs, one per downstream task.

Run:  make finetune TASK=<task> [CKPT=<pretrained checkpoint dir>] [DATA_DIR=...]
  or  python -m tinymyo_jax.main --config=configs/finetune.py:<task> --workdir=DIR
      [--config.init_from=CKPT_DIR|auto|""] [--config.finetune.seeds=3] [--config.model.rope_mode=...]

Tasks (datasets must be built first: `make data DATASET=<name> MANUAL_DIR=...`):
  uci            UCI-EMG, 6 gestures, 8 ch x 1000 samples (1 s on the 1 kHz grid), subject split
                 train <=16 / validation 17-19 / test >=20 (the paper's split, mapped to this copy)
  uci_200hz      the same at 200 Hz, 8 ch x 200 samples (1 s)
  uci_pooled     UCI-EMG with subjects pooled, split by gesture repetition: repetition 1 of both
                 series -> train, repetition 2 of series 1 -> validation, of series 2 -> test
  uci_200hz_pooled  the pooled split at 200 Hz
  db5            NinaPro DB5, 53 classes, 16 ch x 200 samples (1 s at 200 Hz), repetition split
  epn612         EMG-EPN-612, 6 classes, 8 ch x 1000 samples (5 s at 200 Hz)
  db8            NinaPro DB8 joint angles (5 DoA), 16 ch x 1000 samples at 2 kHz, regression
  gaddy_recognition / gaddy_synthesis   Gaddy silent speech: EMG -> characters (CTC) / MFCCs;
                 whole utterances (8 ch at 1 kHz) through the conv front-end + TinyMyo blocks,
                 test CER/WER (greedy and beam search, `finetune.beam_width`) or MFCC MSE
Recipe (paper): AdamW (0.9, 0.98, wd 0.01), peak LR 5e-4, 5 warm-up epochs then cosine, layer-wise
LR decay 0.9, early stopping on validation loss (patience 7), label smoothing 0.1, per-channel
z-score input normalization with the training split's channel statistics (a per-window z-score
would erase the relative channel levels that carry most of the gesture information), at most
50 epochs.
"""

import ml_collections

from configs import common

ALL_SPLITS = "train+validation+test"

TASKS = {
    "uci": dict(task="classification", sources=(("uci_emg", "default", 1.0),), channels=8,
                outputs=6),
    "uci_200hz": dict(task="classification", sources=(("uci_emg", "hz200", 1.0),), channels=8,
                      outputs=6),
    "uci_pooled": dict(task="classification", sources=(("uci_emg", "default", 1.0),),
                       channels=8, outputs=6,
                       splits=(ALL_SPLITS + "|repetition=1",
                               ALL_SPLITS + "|repetition=2,session=1",
                               ALL_SPLITS + "|repetition=2,session=2")),
    "uci_200hz_pooled": dict(task="classification", sources=(("uci_emg", "hz200", 1.0),),
                             channels=8, outputs=6,
                             splits=(ALL_SPLITS + "|repetition=1",
                                     ALL_SPLITS + "|repetition=2,session=1",
                                     ALL_SPLITS + "|repetition=2,session=2")),
    "db5": dict(task="classification", sources=(("ninapro_db5", "default", 1.0),), channels=16,
                outputs=53),
    "epn612": dict(task="classification", sources=(("epn612", "default", 1.0),), channels=8,
                   outputs=6),
    "db8": dict(task="regression", sources=(("ninapro_db8", "w1000", 1.0),), channels=16,
                outputs=5, target_len=1000, keep=("angles",)),
    "gaddy_recognition": dict(task="speech_recognition",
                              sources=(("gaddy_silent_speech", "origdev", 1.0),), channels=8,
                              outputs=38, keep=()),
    "gaddy_synthesis": dict(task="speech_synthesis",
                            sources=(("gaddy_silent_speech", "origdev", 1.0),), channels=8,
                            outputs=26, keep=(), max_len=1600),
}


def get_config(arg: str | None = None):
  name = common.pick_preset(arg, TASKS, default="uci")
  spec = TASKS[name]
  c = common.base_config()
  c.name = name
  c.task = spec["task"]
  c.data.sources = spec["sources"]
  c.data.normalization = "standardize"  # per-channel z-score, training-split statistics
  c.data.keep = spec.get("keep", ("label",))
  c.data.train_split, c.data.eval_split, c.data.test_split = spec.get(
      "splits", ("train", "validation", "test"))
  c.model.head = {"classification": "classification", "regression": "regression"}.get(
      c.task, "reconstruction")
  c.model.num_channels = spec["channels"]
  c.model.num_outputs = spec["outputs"]
  c.model.target_len = spec.get("target_len", 500)
  c.init_from = "auto"  # "auto": `make pretrain`'s checkpoint if present; "": from scratch
  c.batch_size = 32
  c.total_steps = 0  # 0: derived from num_epochs and the train split's size
  c.optimizer.peak_lr = 5e-4
  c.optimizer.init_lr = 1e-5
  c.optimizer.end_lr = 1e-5
  c.optimizer.warmup_steps = 0  # derived from warmup_epochs
  c.eval_every = 0  # 0: once per epoch
  c.checkpoint_every = 0  # 0: once per epoch
  c.log_every = 5
  c.eval_batches = 0  # the whole validation split
  c.early_stopping_patience = 7
  c.finetune = ml_collections.ConfigDict(dict(
      num_epochs=50, warmup_epochs=5, layer_decay=0.9, freeze_backbone=False,
      label_smoothing=0.1, seeds=1, max_train_examples=0, beam_width=8))
  # Quantisation-aware fine-tuning for the GAP9 INT8 pipeline (classification): the loss runs
  # the fake-quantised `export.gap9.graph` forward (STE) with activation scales calibrated once
  # on `calib_batches` training batches; options as `export.gap9.quantize.QuantConfig`.
  c.quant = ml_collections.ConfigDict(dict(
      qat=False, weights="per_channel", activations="percentile", percentile=99.99,
      scales="multiplier", calib_batches=8))
  if c.task.startswith("speech_"):
    # Whole utterances, zero-padded per batch to a multiple of `bucket` samples; synthesis
    # trains on random `max_len`-sample segments (the reference's 200 frames x 8), 0 = whole.
    c.data.max_len = spec.get("max_len", 0)
    c.data.bucket = 1000
  return c.lock()
