"""Pure loss and step functions: no I/O, no config objects."""

from __future__ import annotations

from collections.abc import Callable

import jax
import optax
from flax import nnx


# loss_fn(model, batch, key, train) -> (scalar loss, dict of scalar metrics)
LossFn = Callable[..., tuple[jax.Array, dict[str, jax.Array]]]


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
    with jax.named_scope("optimizer"):
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
