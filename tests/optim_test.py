"""Optimizer pieces: schedule shape, weight-decay mask, gradient accumulation, LR scales."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from tinymyo_jax import optim


def test_warmup_then_cosine_to_end_lr():
  s = optim.warmup_cosine(1e-4, total_steps=100, warmup_steps=10, end_lr=1e-6, init_lr=1e-6)
  np.testing.assert_allclose(float(s(0)), 1e-6, rtol=1e-5)
  np.testing.assert_allclose(float(s(10)), 1e-4, rtol=1e-6)
  np.testing.assert_allclose(float(s(5)), (1e-6 + 1e-4) / 2, rtol=1e-5)
  np.testing.assert_allclose(float(s(100)), 1e-6, rtol=1e-5)
  assert float(s(40)) > float(s(70))


def test_decay_mask_only_kernels():
  params = {"dense": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)},
            "norm": {"scale": jnp.ones(2)}, "mask_token": jnp.ones((1, 1, 2))}
  assert optim.decay_mask(params) == {"dense": {"kernel": True, "bias": False},
                                      "norm": {"scale": False}, "mask_token": False}


def test_grad_accumulation_equals_one_big_batch():
  w0 = {"kernel": jnp.array([[0.5, -1.0], [2.0, 0.1]])}
  xs = jax.random.normal(jax.random.key(0), (8, 2))
  loss = lambda w, x: jnp.mean((x @ w["kernel"]) ** 2)
  sched = optax.constant_schedule(0.1)
  make = lambda k: optim.adamw(sched, b1=0.9, b2=0.98, weight_decay=0.01, grad_clip_norm=3.0,
                               grad_accum_steps=k)
  big = make(1)
  u, _ = big.update(jax.grad(loss)(w0, xs), big.init(w0), w0)
  w_big = optax.apply_updates(w0, u)
  acc = make(2)
  state, w = acc.init(w0), w0
  for half in (xs[:4], xs[4:]):
    u, state = acc.update(jax.grad(loss)(w, half), state, w)
    w = optax.apply_updates(w, u)
  np.testing.assert_allclose(w["kernel"], w_big["kernel"], rtol=1e-5, atol=1e-7)


def test_lr_scale_tree_multiplies_updates():
  w = {"a": jnp.ones(2), "b": jnp.ones(2)}
  tx = optim.adamw(optax.constant_schedule(1.0), b1=0.9, b2=0.98, weight_decay=0.0,
                   grad_clip_norm=None, lr_scale_fn=lambda p: {"a": 1.0, "b": 0.0})
  u, _ = tx.update({"a": jnp.ones(2), "b": jnp.ones(2)}, tx.init(w), w)
  assert float(jnp.abs(u["a"]).sum()) > 0 and float(jnp.abs(u["b"]).sum()) == 0
