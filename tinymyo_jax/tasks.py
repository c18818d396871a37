"""Fine-tuning tasks: loss, batch fields and per-parameter LR scales, chosen by `config.task`.

A task differs from pretraining only in its head, loss and metrics; the loop is `train.py`'s.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from tinymyo_jax.quant import fake_quant, graph

TASK_TYPES = ("classification", "regression")


def forward(model, x, key, train: bool, frozen_encoder: bool = False):
  """The model's output on `x`; dropout from `key` when training (see `TinyMyo.__call__` for
  `frozen_encoder`)."""
  rngs = nnx.Rngs(dropout=key) if train else None
  return model(x, deterministic=not train, rngs=rngs, frozen_encoder=frozen_encoder)


def classification_loss(model, batch, key, train: bool, *, label_smoothing: float = 0.0,
                        frozen_encoder: bool = False):
  """Cross-entropy (optionally label-smoothed) on the logits; also accuracy."""
  logits = forward(model, batch["emg"], key, train, frozen_encoder)
  return _cross_entropy(logits, batch["label"], label_smoothing)


def _cross_entropy(logits, labels, label_smoothing: float):
  targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), label_smoothing)
  loss = optax.softmax_cross_entropy(logits, targets).mean()
  accuracy = (jnp.argmax(logits, -1) == labels).mean()
  return loss, {"loss": loss, "accuracy": accuracy}


def qat_classification_loss(model, batch, key, train: bool, *, scales: dict, qcfg,
                            label_smoothing: float = 0.0):
  """`classification_loss` on the GAP9 pipeline's fake-quantised forward (STE, no dropout)."""
  del key, train
  params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
  logits = fake_quant.qat_forward(params, model.config, batch["emg"], scales, qcfg)
  return _cross_entropy(logits, batch["label"], label_smoothing)


def quant_config(config):
  """`config.quant` as a `fake_quant.QuantConfig` (errors name the config field)."""
  q = config.quant
  try:
    return fake_quant.QuantConfig(weights=q.weights, scales=q.scales, activations=q.activations,
                                percentile=q.percentile)
  except ValueError as e:
    raise ValueError(f"config.quant: {e}") from None


def qat_loss_fn(config, model_cfg, params, train_batches, saved: dict | None = None):
  """(loss_fn, meta) of quantisation-aware fine-tuning (`config.quant.qat`).

  Activation scales come from `saved` (the meta of the checkpoint being resumed) or are
  calibrated once, as the GAP9 PTQ does, on `config.quant.calib_batches` batches of
  `train_batches` with `params`; they stay fixed while the weights are quantised on the fly.
  """
  graph.check_deployable(model_cfg)  # the task itself is checked by `configs.common.validate`
  qcfg = quant_config(config)
  if saved:
    scales, windows = saved["scales"], saved["calib_windows"]
  else:
    x = np.concatenate([np.asarray(b["emg"]) for b in
                        itertools.islice(train_batches, config.quant.calib_batches)])
    ranges = fake_quant.calibrate(jax.device_get(params), model_cfg, x, qcfg)
    scales, windows = fake_quant.activation_scales(ranges, qcfg), len(x)
  loss = functools.partial(qat_classification_loss,
                           scales={k: np.float32(v) for k, v in scales.items()}, qcfg=qcfg,
                           label_smoothing=config.finetune.label_smoothing)
  return loss, {"qcfg": dataclasses.asdict(qcfg), "scales": scales, "calib_windows": windows}


def regression_loss(model, batch, key, train: bool, *, frozen_encoder: bool = False):
  """L1 between predicted and target joint angles (both [B, L, K] after the transpose)."""
  pred = forward(model, batch["emg"], key, train, frozen_encoder)  # [B, L, K]
  target = jnp.swapaxes(batch["angles"], 1, 2)  # builder stores [B, K, W]
  if target.shape != pred.shape:
    raise ValueError(f"regression target shape {target.shape} does not match the head's output "
                     f"{pred.shape}; set config.model.target_len to the window length")
  loss = jnp.abs(pred - target).mean()
  return loss, {"loss": loss, "mae": loss}


def loss_fn(config):
  """The loss function of `config.task`."""
  frozen = bool(config.finetune.freeze_backbone)
  if config.task == "classification":
    return functools.partial(classification_loss, frozen_encoder=frozen,
                             label_smoothing=config.finetune.label_smoothing)
  if config.task == "regression":
    return functools.partial(regression_loss, frozen_encoder=frozen)
  if config.task in ("speech_recognition", "speech_synthesis"):
    from tinymyo_jax import speech_task
    return speech_task.speech_loss  # the model's config says recognition or synthesis
  raise ValueError(f"unknown task type {config.task!r}; expected 'pretrain' or one of "
                   f"{TASK_TYPES + ('speech_recognition', 'speech_synthesis')}")


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


def lr_scale_fn(config):
  """A function params -> LR scale tree for the optimizer, or None when all scales are 1."""
  f = config.finetune
  if f.layer_decay == 1.0 and not f.freeze_backbone:
    return None
  from tinymyo_jax.models.tinymyo import VARIANTS
  num_layers = VARIANTS[config.model.variant]["num_layers"]
  return functools.partial(lr_scales, num_layers=num_layers, decay=f.layer_decay,
                           freeze_backbone=f.freeze_backbone)
