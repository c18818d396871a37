"""Masked-patch reconstruction pretraining on windows of every source: trains only (no test
evaluation, no layer-wise LR).

Targets (`config.pretrain.target`), per patch of P samples:
  signal    the P samples themselves (the paper's objective);
  spectrum  log(1 + |rFFT|) of the patch (P // 2 + 1 numbers): the energy in each frequency band
            without the phase, which no model can predict from neighbouring patches of EMG.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from tinymyo_jax.masking import random_patch_mask
from tinymyo_jax.models.tinymyo import patchify
from tinymyo_jax.tasks import core


def masked_mean(values, weights):
  return jnp.sum(values * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def masked_std(values, weights):
  mean = masked_mean(values, weights)
  return jnp.sqrt(masked_mean((values - mean) ** 2, weights))


def spectrum(patches_bnp):
  """log(1 + |rFFT|) of each patch, orthonormal scaling: [B, N, P] -> [B, N, P // 2 + 1]."""
  return jnp.log1p(jnp.abs(jnp.fft.rfft(patches_bnp.astype(jnp.float32), norm="ortho")))


TARGETS = {"signal": (lambda patches: patches, lambda p: p),
           "spectrum": (spectrum, lambda p: p // 2 + 1)}  # name -> (target fn, width from P)


def target_width(target: str, patch_size: int) -> int:
  if target not in TARGETS:
    raise ValueError(f"unknown pretraining target {target!r}; expected one of {sorted(TARGETS)}")
  return TARGETS[target][1](patch_size)


def pretrain_loss(model, batch, key, train: bool, *, mask_ratio: float = 0.5,
                  visible_weight: float = 0.1, target: str = "signal"):
  """Masked patch reconstruction: SmoothL1(masked) + visible_weight * SmoothL1(visible).

  Also returns `std_ratio` = std(reconstructed masked patches) / std(their targets), near 0
  when the reconstruction has collapsed to a constant, and `floor_masked`, the masked loss of
  predicting each target number's batch mean: what the model must beat to have learnt anything.
  """
  x = batch["emg"]
  b, c, t = x.shape
  p = model.config.patch_size
  mask_key, drop_key = jax.random.split(key)
  mask_bn = random_patch_mask(mask_key, b, c * (t // p), mask_ratio)
  rngs = nnx.Rngs(dropout=drop_key) if train else None
  pred = model(x, mask_bn, deterministic=not train, rngs=rngs)  # [B, N, P]
  goal = TARGETS[target][0](patchify(x, p))
  elem = optax.huber_loss(pred, goal, delta=1.0)  # == SmoothL1 with beta 1
  masked = jnp.broadcast_to(mask_bn[..., None], elem.shape).astype(jnp.float32)
  loss_masked = masked_mean(elem, masked)
  loss_visible = masked_mean(elem, 1.0 - masked)
  loss = loss_masked + visible_weight * loss_visible
  std_ratio = masked_std(pred, masked) / (masked_std(goal, masked) + 1e-8)
  goal_mean = jnp.sum(goal * masked, axis=(0, 1)) / jnp.maximum(jnp.sum(masked, axis=(0, 1)), 1.0)
  floor = masked_mean(optax.huber_loss(jnp.broadcast_to(goal_mean, goal.shape), goal), masked)
  return loss, {"loss": loss, "loss_masked": loss_masked, "loss_visible": loss_visible,
                "std_ratio": std_ratio, "floor_masked": floor}


def model_config(config):
  """The window model with a reconstruction head as wide as `config.pretrain.target` needs."""
  base = core.window_model_config(config)
  width = target_width(config.pretrain.get("target", "signal"), base.patch_size)
  return dataclasses.replace(base, num_outputs=0 if width == base.patch_size else width)


def loss_fn(config):
  return functools.partial(pretrain_loss, mask_ratio=config.pretrain.mask_ratio,
                           visible_weight=config.pretrain.visible_weight,
                           target=config.pretrain.get("target", "signal"))


TASK = core.Task(name="pretrain", model_config=model_config, loss_fn=loss_fn,
                 dataset_fn=core.window_dataset_fn)
