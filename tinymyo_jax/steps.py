"""Pure loss and step functions: no I/O, no config objects."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from tinymyo_jax.masking import random_patch_mask
from tinymyo_jax.models.tinymyo import patchify

# loss_fn(model, batch, key, train) -> (scalar loss, dict of scalar metrics)
LossFn = Callable[..., tuple[jax.Array, dict[str, jax.Array]]]


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


def make_train_step(graphdef, tx: optax.GradientTransformation, loss_fn: LossFn,
                    lr_schedule=None, grad_accum_steps: int = 1):
  """train_step(state, batch, key) -> (state, metrics); state = {params, opt_state, step}.

  A model with BatchNorm also has `state["batch_stats"]` (its `nnx.BatchStat` leaves): carried
  into the forward pass and out with the values the training forward pass wrote, never
  differentiated or optimized. Without the key, the step is exactly the params-only one.
  """

  def train_step(state, batch, key):
    step_key = jax.random.fold_in(key, state["step"])
    stats = state.get("batch_stats")

    def objective(params):
      model = nnx.merge(graphdef, params) if stats is None else nnx.merge(graphdef, params, stats)
      loss, metrics = loss_fn(model, batch, step_key, True)
      new_stats = None if stats is None else nnx.to_pure_dict(nnx.state(model, nnx.BatchStat))
      return loss, (metrics, new_stats)

    (_, (metrics, new_stats)), grads = jax.value_and_grad(objective, has_aux=True)(
        state["params"])
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    metrics = dict(metrics, grad_norm=optax.tree.norm(grads),
                   param_norm=optax.tree.norm(params))
    if lr_schedule is not None:
      metrics["lr"] = lr_schedule(state["step"] // grad_accum_steps)
    new_state = {"params": params, "opt_state": opt_state, "step": state["step"] + 1}
    if stats is not None:
      new_state["batch_stats"] = new_stats
    return new_state, metrics

  return train_step


def make_eval_step(graphdef, loss_fn: LossFn):
  """eval_step(params, batch, key, batch_stats=None) -> metrics (deterministic forward)."""

  def eval_step(params, batch, key, batch_stats=None):
    model = (nnx.merge(graphdef, params) if batch_stats is None
             else nnx.merge(graphdef, params, batch_stats))
    return loss_fn(model, batch, key, False)[1]

  return eval_step
