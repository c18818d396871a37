"""Shared config blocks, preset lookup and validation for every run config."""

from __future__ import annotations

import os

import ml_collections

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA_DIR = os.path.join(REPO_ROOT, "data", "tfds")


def pick_preset(arg: str | None, presets: dict, default: str = "default") -> str:
  """Returns the preset name for `arg`, or raises naming the unknown preset and the known ones."""
  name = arg or default
  if name not in presets:
    raise ValueError(f"unknown config preset {name!r}; expected one of {sorted(presets)}")
  return name


def base_config() -> ml_collections.ConfigDict:
  """Fields shared by pretraining and fine-tuning runs (each file overrides what it needs)."""
  c = ml_collections.ConfigDict()
  c.name = "default"
  c.task = "pretrain"
  c.seed = 42
  # A checkpoint whose params start the run ("": random init). Pretraining takes every param
  # (continued pretraining); fine-tuning its encoder (and the head where it matches).
  c.init_from = ""
  # model.dtype: float32, bfloat16 (bf16 compute, fp32 params, optimizer state and loss) or auto
  # (bfloat16 on accelerators and on CPUs with native bf16 dots, `tinymyo_jax/cpu_features.py`).
  # model.num_layers: 0 = the variant's depth; fewer blocks than a pretrained checkpoint keeps
  # its first ones (fine-tuning or probing a truncated encoder).
  c.model = ml_collections.ConfigDict(dict(
      variant="tiny", num_layers=0, rope_mode="time", dtype="float32", max_channels=16, dropout=0.1,
      attn_dropout=0.1, drop_path=0.1, head="reconstruction", num_channels=16, num_outputs=0,
      reduction="concat", target_len=500))
  c.data = ml_collections.ConfigDict(dict(
      sources=(("uci_emg", "default", 1.0),), data_dir=DEFAULT_DATA_DIR, train_split="train",
      eval_split="validation", normalization="minmax", num_channels=0, keep=(),
      # Extra (name, builder_config, split) corpora whose loss is logged at every evaluation
      # (`eval/<name>/...`) without training on them; 'standardize' uses their train split's
      # channel statistics.
      eval_sources=(),
      # Training-time augmentation (input_pipeline.Augmentation): circular channel shift of up
      # to `rotate` channels, gain exp(U(-scale, scale)), time shift of up to `jitter` samples.
      augment=ml_collections.ConfigDict(dict(rotate=0, scale=0.0, jitter=0))))
  c.batch_size = 32
  c.total_steps = 1000
  c.grad_accum_steps = 1
  c.optimizer = ml_collections.ConfigDict(dict(
      peak_lr=1e-4, init_lr=1e-6, end_lr=1e-6, warmup_steps=100, b1=0.9, b2=0.98,
      weight_decay=0.01, grad_clip_norm=3.0))
  # pretrain.target: what a masked patch is reconstructed as, "signal" (its samples, the
  # paper's) or "spectrum" (log-amplitude of its rFFT; `tinymyo_jax/tasks/pretrain.py`).
  c.pretrain = ml_collections.ConfigDict(dict(mask_ratio=0.5, visible_weight=0.1,
                                              target="signal"))
  c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1))
  c.distributed = False
  c.log_every = 10
  c.eval_every = 200
  c.eval_batches = 20
  c.checkpoint_every = 200
  c.max_to_keep = 3
  c.progress_bar = True
  c.early_stopping_patience = 0  # evals without improvement before stopping; 0 = off
  # Resuming a workdir whose checkpoint was written under another schedule, batch size, data or
  # task is refused (the differing fields are listed); True continues under the new values.
  c.allow_config_change = False
  return c


# Fine-tuning fields that may be left at 0 in a config: derived from the epochs and the training
# split's size once the data is known (`finetune.derive_schedule`).
DERIVED_FIELDS = ("total_steps", "eval_every", "checkpoint_every")


def smoke_schedule(c: ml_collections.ConfigDict, batch_size: int) -> None:
  """The `test` model for 6 steps, evaluating and checkpointing every 3, without a progress bar."""
  c.model.variant = "test"
  c.batch_size = batch_size
  c.total_steps = 6
  c.optimizer.warmup_steps = 2
  c.log_every = 1
  c.eval_every = 3
  c.checkpoint_every = 3
  c.eval_batches = 2
  c.progress_bar = False


def validate(c: ml_collections.ConfigDict, *, resolved: bool = False) -> None:
  """Raises ValueError naming the first field whose value cannot work.

  A fine-tuning config (one with a `finetune` block) may leave `DERIVED_FIELDS` at 0, "derived
  from the epochs later"; `resolved=True` (the training loop) requires them to be set.
  """
  derived_later = c.get("finetune") is not None and not resolved
  positive = ("batch_size", "total_steps", "grad_accum_steps", "log_every", "eval_every",
              "checkpoint_every", "max_to_keep")
  for key in positive:
    if derived_later and key in DERIVED_FIELDS and int(c[key]) == 0:
      continue
    if int(c[key]) < 1:
      extra = (" (or 0: derived from the epochs)"
               if derived_later and key in DERIVED_FIELDS else "")
      raise ValueError(f"config.{key} must be >= 1{extra}, got {c[key]}")
  if derived_later:
    f = c.finetune
    if int(c.total_steps) == 0 and int(f.num_epochs) < 1:
      raise ValueError(f"config.finetune.num_epochs must be >= 1 when config.total_steps is 0, "
                       f"got {f.num_epochs}")
    if int(f.warmup_epochs) < 0:
      raise ValueError(f"config.finetune.warmup_epochs must be >= 0, got {f.warmup_epochs}")
    if int(f.seeds) < 1:
      raise ValueError(f"config.finetune.seeds must be >= 1, got {f.seeds}")
  if not c.data.sources:
    raise ValueError("config.data.sources is empty")
  for spec in c.data.sources:
    if not 3 <= len(spec) <= 5 or float(spec[2]) <= 0 or (len(spec) > 3 and int(spec[3]) < 0):
      raise ValueError(f"config.data.sources entries are (name, builder_config, weight>0"
                       f"[, channel_group>=0[, split]]); got {spec}")
  for spec in c.data.get("eval_sources", ()):
    if len(spec) != 3 or not all(isinstance(v, str) and v for v in spec):
      raise ValueError(f"config.data.eval_sources entries are (name, builder_config, split); "
                       f"got {spec}")
  from tinymyo_jax import tasks  # local: configs load without the library's dependencies
  task = tasks.get(c.task)
  augment = c.data.get("augment") or {}
  if not task.augmentable and any(augment.get(k) for k in ("rotate", "scale", "jitter")):
    raise ValueError(f"config.data.augment applies to window tasks; the speech pipeline of task "
                     f"{c.task!r} has none, got {dict(augment)}")
  if not 0.0 <= c.pretrain.mask_ratio < 1.0:
    raise ValueError(f"config.pretrain.mask_ratio must be in [0, 1), got {c.pretrain.mask_ratio}")
  from tinymyo_jax.tasks.pretrain import TARGETS
  if c.pretrain.target not in TARGETS:
    raise ValueError(f"config.pretrain.target must be one of {sorted(TARGETS)}, got "
                     f"{c.pretrain.target!r}")
  if c.optimizer.warmup_steps < 0:
    raise ValueError(f"config.optimizer.warmup_steps must be >= 0, got "
                     f"{c.optimizer.warmup_steps}")
  quant = c.get("quant")
  if quant is not None and quant.qat:
    if task.qat_loss_fn is None:
      raise ValueError(f"config.quant.qat=True needs task 'classification' (the GAP9 pipeline "
                       f"deploys a classifier), got task {c.task!r}")
    if int(quant.calib_batches) < 1:
      raise ValueError(f"config.quant.calib_batches must be >= 1, got {quant.calib_batches}")
  if c.data.num_channels and c.data.num_channels > c.model.max_channels:
    raise ValueError(f"config.data.num_channels={c.data.num_channels} is above "
                     f"config.model.max_channels={c.model.max_channels}")
