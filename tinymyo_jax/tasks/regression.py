"""Window regression (NinaPro DB8 joint angles): L1 between the head's [B, L, K] output and the
target sequence, and per-output MAE / RMSE / R2 / correlation on the test split."""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np

from tinymyo_jax import evaluate, metrics
from tinymyo_jax.tasks import core


def regression_loss(model, batch, key, train: bool, *, frozen_encoder: bool = False):
  """L1 between predicted and target joint angles (both [B, L, K] after the transpose)."""
  pred = core.forward(model, batch["emg"], key, train, frozen_encoder)  # [B, L, K]
  target = jnp.swapaxes(batch["angles"], 1, 2)  # builder stores [B, K, W]
  if target.shape != pred.shape:
    raise ValueError(f"regression target shape {target.shape} does not match the head's output "
                     f"{pred.shape}; set config.model.target_len to the window length")
  loss = jnp.abs(pred - target).mean()
  return loss, {"loss": loss, "mae": loss}


def loss_fn(config):
  return functools.partial(regression_loss, frozen_encoder=bool(config.finetune.freeze_backbone))


def evaluate_test(config, params, model_cfg, meta, out_dir: str):
  del out_dir  # nothing but the metrics
  outputs, targets, _ = evaluate.window_outputs(config, params, model_cfg, meta, "angles")
  result = metrics.regression_metrics(np.swapaxes(targets, 1, 2), outputs)
  scalars = {k: v for k, v in result.items() if isinstance(v, (int, float))}
  return {"scalars": scalars, "details": result, "num_examples": int(len(targets))}


TASK = core.Task(name="regression", model_config=core.window_model_config, loss_fn=loss_fn,
                 dataset_fn=core.window_dataset_fn, evaluate=evaluate_test,
                 lr_scale_fn=core.finetune_lr_scale_fn)
