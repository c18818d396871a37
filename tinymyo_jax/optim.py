"""Optimizers and learning-rate schedules built from the config."""

from __future__ import annotations

import jax
import optax


def warmup_cosine(peak_lr: float, total_steps: int, warmup_steps: int, end_lr: float,
                  init_lr: float = 0.0) -> optax.Schedule:
  """Linear warm-up from `init_lr` to `peak_lr`, then cosine decay to `end_lr`."""
  total_steps = max(total_steps, warmup_steps + 1)
  return optax.warmup_cosine_decay_schedule(
      init_value=init_lr, peak_value=peak_lr, warmup_steps=warmup_steps,
      decay_steps=total_steps, end_value=end_lr)


def adamw(schedule: optax.Schedule, *, b1: float, b2: float, weight_decay: float,
          grad_clip_norm: float | None, grad_accum_steps: int = 1,
          lr_scale_fn=None) -> optax.GradientTransformation:
  """AdamW with global-norm clipping and optional accumulation / per-parameter LR scales.

  `lr_scale_fn(params) -> pytree of floats` multiplies each parameter's update (used for
  layer-wise LR decay in fine-tuning).
  """
  parts = []
  if grad_clip_norm:
    parts.append(optax.clip_by_global_norm(grad_clip_norm))
  parts.append(optax.scale_by_adam(b1=b1, b2=b2, eps=1e-8))
  parts.append(optax.add_decayed_weights(weight_decay, mask=decay_mask))
  if lr_scale_fn is not None:
    parts.append(scale_by_tree(lr_scale_fn))
  parts.append(optax.scale_by_learning_rate(schedule))
  tx = optax.chain(*parts)
  if grad_accum_steps > 1:
    tx = optax.MultiSteps(tx, every_k_schedule=grad_accum_steps)
  return tx


def decay_mask(params):
  """Weight decay on kernels only; not on biases, norm scales or the mask token."""
  return jax.tree_util.tree_map_with_path(
      lambda path, _: getattr(path[-1], "key", None) == "kernel", params)


def scale_by_tree(scale_fn) -> optax.GradientTransformation:
  """Multiplies each update by a per-parameter scale (`scale_fn(updates)` gives the tree)."""

  def init_fn(params):
    del params
    return optax.EmptyState()

  def update_fn(updates, state, params=None):
    scales = scale_fn(updates)
    return jax.tree.map(lambda u, s: u * s, updates, scales), state

  return optax.GradientTransformation(init_fn, update_fn)
