"""Fine-tuning configs, one per downstream task.

Run:  make finetune TASK=<task> [CKPT=<pretrained checkpoint dir>] [DATA_DIR=...]
  or  python -m tinymyo_jax.main --config=configs/finetune.py:<task> --workdir=DIR
      [--config.init_from=CKPT_DIR|auto|""] [--config.finetune.seeds=3]
      [--config.model.rope_mode=...]

Tasks (datasets must be built first: `make data DATASET=<name> MANUAL_DIR=...`):
  uci            UCI-EMG, 6 gestures, 8 ch x 1000 samples (1 s on the 1 kHz grid), subject split
                 train <=16 / validation 17-19 / test >=20 (the paper's split, mapped to this copy)
  uci_200hz      the same at 200 Hz, 8 ch x 200 samples (1 s)
  uci_pooled     UCI-EMG with subjects pooled, split by gesture repetition: repetition 1 of both
                 series -> train, repetition 2 of series 1 -> validation, of series 2 -> test
  uci_200hz_pooled  the pooled split at 200 Hz
  uci,<split> / uci_200hz,<split>   a named subject split (UCI_SPLITS): copy (the default above),
                 paper (subjects 1-24 / 25-30 / 31-36, needs the complete 36-subject corpus),
                 fold0..fold4 (grouped 5-fold cross-validation by subject)
  <task>,smoke   any task (and split: uci_200hz,fold2,smoke) as a smoke run: the 2-layer `test`
                 model from scratch, 6 steps, the task's own head, loss and test evaluation
  myo_readings   myo-readings-dataset, 8 wrist gestures, 8 ch x 200 (1 s), participant-disjoint
  myoarmband     Myo Armband Dataset, 7 gestures, within person: cycles 0-1 / 2 / 3
  myodisco       MyoDisCo, 10 gestures, within person across days (day 1 -> day 2)
  ciil           CIIL electrode shift, 5 gestures, within person across an electrode shift
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


def subject_splits(train: str, validation: str, test: str) -> tuple[str, str, str]:
  """(train, validation, test) split expressions selecting subjects of every built split."""
  return tuple(f"{ALL_SPLITS}|subject={s}" for s in (train, validation, test))


def subject_fold(k: int, folds: int = 5, max_subject: int = 36) -> tuple[str, str, str]:
  """Grouped cross-validation fold k: test = subjects s with s % folds == k, validation = the
  next residue class, train = the rest (ids up to `max_subject`; absent ids select nothing)."""
  def ids(residue):
    return "+".join(str(s) for s in range(1, max_subject + 1) if s % folds == residue)
  rest = "+".join(ids(r) for r in range(folds) if r not in (k, (k + 1) % folds))
  return subject_splits(rest, ids((k + 1) % folds), ids(k))


# Named subject splits of the UCI tasks, picked with ",<name>" after the task
# (`configs/finetune.py:uci_200hz,paper`). "copy": the builder's splits, the paper's protocol mapped
# onto the 20-subject distribution copy (train <= 16, validation 17-19, test >= 20); "paper": the
# paper's subjects 1-24 / 25-30 / 31-36 of the complete 36-subject corpus; "fold0".."fold4":
# grouped 5-fold cross-validation by subject id modulo 5 (validation = the next fold).
UCI_SPLITS = {"copy": ("train", "validation", "test"),
              "paper": subject_splits("1-24", "25-30", "31-36"),
              **{f"fold{k}": subject_fold(k) for k in range(5)}}

TASKS = {
    "uci": dict(task="classification", sources=(("uci_emg", "default", 1.0),), channels=8,
                outputs=6, named_splits=UCI_SPLITS),
    "uci_200hz": dict(task="classification", sources=(("uci_emg", "hz200", 1.0),), channels=8,
                      outputs=6, named_splits=UCI_SPLITS),
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
    # The four Myo-armband corpora (8 ch, 200 Hz, 1 s windows), each with its publisher's
    # protocol as the builder's splits (see each data_builders/<name>/README.md).
    "myo_readings": dict(task="classification", sources=(("myo_readings", "default", 1.0),),
                         channels=8, outputs=8),
    "myoarmband": dict(task="classification", sources=(("myoarmband", "cycle", 1.0),),
                       channels=8, outputs=7),
    "myodisco": dict(task="classification", sources=(("myodisco", "cross_day", 1.0),),
                     channels=8, outputs=10),
    "ciil": dict(task="classification", sources=(("ciil", "electrode_shift", 1.0),),
                 channels=8, outputs=5),
    "gaddy_recognition": dict(task="speech_recognition",
                              sources=(("gaddy_silent_speech", "origdev", 1.0),), channels=8,
                              outputs=38, keep=()),
    "gaddy_synthesis": dict(task="speech_synthesis",
                            sources=(("gaddy_silent_speech", "origdev", 1.0),), channels=8,
                            outputs=26, keep=(), max_len=1600),
}


def get_config(arg: str | None = None):
  """`arg` is "<task>[,<modifier>...]": a split of `UCI_SPLITS` (UCI subject-split tasks only)
  and/or "smoke" (`apply_smoke`), e.g. "uci_200hz,fold2,smoke"."""
  task, *modifiers = (arg or "uci").split(",")
  name = common.pick_preset(task, TASKS, default="uci")
  spec = dict(TASKS[name])
  modifiers = [m for m in modifiers if m]
  smoke = "smoke" in modifiers
  split_names = [m for m in modifiers if m != "smoke"]
  if len(split_names) > 1:
    raise ValueError(f"task {name!r} takes at most one named split, got {split_names}")
  split_name = split_names[0] if split_names else ""
  if split_name:
    if "named_splits" not in spec:
      raise ValueError(f"task {name!r} takes no named split (got {split_name!r}); named splits "
                       f"exist for the subject-split UCI tasks uci and uci_200hz; the one "
                       f"modifier every task takes is 'smoke'")
    if split_name not in spec["named_splits"]:
      raise ValueError(f"unknown UCI split {split_name!r}; expected one of "
                       f"{sorted(spec['named_splits'])} (or the modifier 'smoke')")
    spec["splits"] = spec["named_splits"][split_name]
  c = common.base_config()
  c.name = "_".join([name, *([split_name] if split_name else []), *(["smoke"] if smoke else [])])
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
  # the fake-quantised `tinymyo_jax.quant.graph` forward (STE) with activation scales calibrated
  # once on `calib_batches` training batches; options as `tinymyo_jax.quant.fake_quant.QuantConfig`.
  c.quant = ml_collections.ConfigDict(dict(
      qat=False, weights="per_channel", activations="percentile", percentile=99.99,
      scales="multiplier", calib_batches=8))
  if c.task.startswith("speech_"):
    # Whole utterances, zero-padded per batch to a multiple of `bucket` samples; synthesis
    # trains on random `max_len`-sample segments (the reference's 200 frames x 8), 0 = whole.
    c.data.max_len = spec.get("max_len", 0)
    c.data.bucket = 1000
  if smoke:
    apply_smoke(c)
  return c.lock()


def apply_smoke(c) -> None:
  """A few steps of the 2-layer `test` model from scratch, with the task's own head, loss, data
  and test evaluation: a check that the task runs end to end in seconds (e.g. on dummy data)."""
  common.smoke_schedule(c, batch_size=2 if c.task.startswith("speech_") else 4)
  c.init_from = ""  # a pretrained `tiny` checkpoint would not fit the `test` model
  c.finetune.seeds = 1
  c.finetune.beam_width = 2
