"""The `Task` interface and what the window tasks share: model config, dataset, LLRD, forward.

A task type is one module of this package (or any module, see `tinymyo_jax.tasks.get`) that
defines a `Task`; the training loop and the fine-tuning driver use nothing else of it.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
from flax import nnx

from tinymyo_jax import cpu_features, input_pipeline
from tinymyo_jax.models.tinymyo import VARIANTS, decode_variant


@dataclasses.dataclass(frozen=True)
class Task:
  """Everything a run of one task type needs beyond the shared loop.

  model_config: run config -> the model's config (`ModelConfig`, `SpeechConfig`, ...).
  loss_fn: run config -> `loss(model, batch, key, train) -> (loss, metrics)`.
  dataset_fn: (run config, sources, per-process batch size, channel stats) ->
    `make_ds(split, *, seed, train)`, an iterable of numpy batches.
  evaluate: (run config, params, model config, checkpoint meta, out dir) -> {"scalars": ...,
    "details": ..., "num_examples": ...} on `config.data.test_split`; None for a task that only
    trains (pretraining: `main` then runs the loop without fine-tuning and testing).
  lr_scale_fn: run config -> (params -> per-parameter LR scale tree, or None for all ones).
  qat_loss_fn: `(config, model_cfg, params, train_batches, saved) -> (loss, meta)` for
    quantisation-aware training (`config.quant.qat`), or None where the task has none.
  stats_records: training records read for the per-channel statistics.
  augmentable: whether `config.data.augment` (window rotation, gain, time shift) applies.
  """

  name: str
  model_config: Callable[[Any], Any]
  loss_fn: Callable[[Any], Callable]
  dataset_fn: Callable[..., Callable]
  evaluate: Callable[..., dict] | None = None
  lr_scale_fn: Callable[[Any], Callable | None] = lambda config: None
  qat_loss_fn: Callable[..., tuple] | None = None
  stats_records: int = 2048
  augmentable: bool = True


def compute_dtype(config) -> str:
  """`config.model.dtype` with "auto" resolved for this backend and CPU (`cpu_features`)."""
  return cpu_features.resolve_dtype(config.model.dtype, jax.default_backend())


def num_layers(config) -> int:
  """Transformer blocks of the run's model: `config.model.num_layers`, or its variant's (0)."""
  return config.model.get("num_layers") or VARIANTS[config.model.variant]["num_layers"]


def window_model_config(config):
  """The TinyMyo config of a window task: `config.model`'s variant, head and sizes."""
  m = config.model
  return decode_variant(
      m.variant, num_layers=num_layers(config), rope_mode=m.rope_mode,
      dtype=compute_dtype(config), max_channels=m.max_channels,
      dropout=m.dropout, attn_dropout=m.attn_dropout, drop_path=m.drop_path,
      head=m.get("head", "reconstruction"), num_channels=m.get("num_channels", 16),
      num_outputs=m.get("num_outputs", 0), reduction=m.get("reduction", "concat"),
      target_len=m.get("target_len", 500))


def window_dataset_fn(config, sources, batch_size: int, stats):
  """Batches of fixed windows (`input_pipeline.make_dataset`) with the config's augmentation."""
  d = config.data
  return functools.partial(
      input_pipeline.make_dataset, sources, data_dir=d.data_dir, batch_size=batch_size,
      normalization=d.normalization, num_channels=d.get("num_channels") or None,
      keep=tuple(d.get("keep", ())), stats=stats,
      augmentation=input_pipeline.Augmentation(**d.get("augment", {})))


def forward(model, x, key, train: bool, frozen_encoder: bool = False):
  """The model's output on `x`; dropout from `key` when training (see `TinyMyo.__call__` for
  `frozen_encoder`)."""
  rngs = nnx.Rngs(dropout=key) if train else None
  return model(x, deterministic=not train, rngs=rngs, frozen_encoder=frozen_encoder)


# ----------------------------------------------------------------------------- layer-wise LR decay

# Entries below the Transformer blocks: TinyMyo's patch embedding and mask token, the speech
# model's conv front-end and its input projection.
INPUT_ENTRIES = ("patch_embed", "mask_token", "front", "w_raw_in")
# What a pretrained TinyMyo checkpoint provides (frozen by `freeze_backbone`).
PRETRAINED_ENTRIES = ("patch_embed", "mask_token", "blocks", "norm")


def layer_index(path: tuple, num_layers: int) -> int:
  """0 for the input entries (patch embedding, speech front-end), i+1 for block i, num_layers+1
  above."""
  top = str(path[0])
  if top in INPUT_ENTRIES:
    return 0
  if top == "blocks":
    return int(str(path[1])) + 1
  return num_layers + 1


def lr_scales(params, *, num_layers: int, decay: float, freeze_backbone: bool):
  """Per-parameter LR multipliers: decay**(depth from the top); 0 for a frozen backbone.

  A frozen backbone is what a pretrained checkpoint provides (patch embedding, mask token,
  blocks, final norm): TinyMyo then trains its head only, the speech model its (new) conv
  front-end, input projection and output layer.
  """

  def scale(path, _):
    keys = tuple(getattr(k, "key", getattr(k, "idx", k)) for k in path)
    if freeze_backbone:
      return 0.0 if str(keys[0]) in PRETRAINED_ENTRIES else 1.0
    return decay ** (num_layers + 1 - layer_index(keys, num_layers))

  return jax.tree_util.tree_map_with_path(scale, params)


def finetune_lr_scale_fn(config):
  """`config.finetune`'s layer decay / frozen backbone as a params -> scales function, or None
  when every scale is 1."""
  f = config.finetune
  if f.layer_decay == 1.0 and not f.freeze_backbone:
    return None
  return functools.partial(lr_scales, num_layers=num_layers(config),
                           decay=f.layer_decay, freeze_backbone=f.freeze_backbone)
