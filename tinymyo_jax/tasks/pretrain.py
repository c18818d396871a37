"""Masked-patch reconstruction pretraining on windows of every source: trains only (no test
evaluation, no layer-wise LR)."""

from __future__ import annotations

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


def pretrain_loss(model, batch, key, train: bool, *, mask_ratio: float = 0.5,
                  visible_weight: float = 0.1):
  """Masked patch reconstruction: SmoothL1(masked) + visible_weight * SmoothL1(visible).

  Also returns `std_ratio` = std(reconstructed masked patches) / std(their targets): a value
  near 0 means the reconstruction has collapsed to a constant.
  """
  x = batch["emg"]
  b, c, t = x.shape
  p = model.config.patch_size
  mask_key, drop_key = jax.random.split(key)
  mask_bn = random_patch_mask(mask_key, b, c * (t // p), mask_ratio)
  rngs = nnx.Rngs(dropout=drop_key) if train else None
  pred = model(x, mask_bn, deterministic=not train, rngs=rngs)  # [B, N, P]
  target = patchify(x, p)
  elem = optax.huber_loss(pred, target, delta=1.0)  # == SmoothL1 with beta 1
  masked = jnp.broadcast_to(mask_bn[..., None], elem.shape).astype(jnp.float32)
  loss_masked = masked_mean(elem, masked)
  loss_visible = masked_mean(elem, 1.0 - masked)
  loss = loss_masked + visible_weight * loss_visible
  std_ratio = masked_std(pred, masked) / (masked_std(target, masked) + 1e-8)
  return loss, {"loss": loss, "loss_masked": loss_masked, "loss_visible": loss_visible,
                "std_ratio": std_ratio}



def loss_fn(config):
  return functools.partial(pretrain_loss, mask_ratio=config.pretrain.mask_ratio,
                           visible_weight=config.pretrain.visible_weight)


TASK = core.Task(name="pretrain", model_config=core.window_model_config, loss_fn=loss_fn,
                 dataset_fn=core.window_dataset_fn)
