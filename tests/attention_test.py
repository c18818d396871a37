"""Blocked attention: same values and gradients as one-block attention, group-size rule, dropout."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tinymyo_jax.models import layers


def _qkv(b=6, h=3, n=40, d=16, seed=0):
  keys = jax.random.split(jax.random.key(seed), 3)
  return tuple(jax.random.normal(k, (b, h, n, d)) for k in keys)


def _reference(q, k, v):
  logits = jnp.einsum("bhnd,bhmd->bhnm", q, k) / np.sqrt(q.shape[-1])
  return jnp.einsum("bhnm,bhmd->bnhd", jax.nn.softmax(logits, axis=-1), v)


@pytest.mark.parametrize("group", [1, 2, 3, 6])
def test_blocked_matches_plain_attention_values_and_grads(group):
  q, k, v = _qkv()
  out = layers.blocked_attention(q, k, v, group=group)
  assert out.shape == (6, 40, 3, 16)
  np.testing.assert_allclose(out, _reference(q, k, v), atol=2e-6)
  w = jax.random.normal(jax.random.key(9), out.shape)
  grads = jax.grad(lambda *a: jnp.sum(layers.blocked_attention(*a, group=group) * w),
                   argnums=(0, 1, 2))(q, k, v)
  ref = jax.grad(lambda *a: jnp.sum(_reference(*a) * w), argnums=(0, 1, 2))(q, k, v)
  for g, r in zip(grads, ref):
    np.testing.assert_allclose(g, r, atol=2e-5)


@pytest.mark.parametrize("batch,devices,per_device,expected", [
    (64, 1, 2, 2), (64, 8, 2, 16), (7, 1, 2, 7), (1, 1, 2, 1), (12, 1, 5, 6), (4, 8, 2, 4)])
def test_group_size_is_a_divisor_covering_every_device(batch, devices, per_device, expected):
  assert layers.attention_group_size(batch, devices, per_device) == expected


def test_dropout_is_deterministic_per_key_and_drops_the_asked_share():
  q, k, v = _qkv(b=4, n=64)
  a = layers.blocked_attention(q, k, v, group=2, drop_rate=0.5, key=jax.random.key(1))
  b = layers.blocked_attention(q, k, v, group=2, drop_rate=0.5, key=jax.random.key(1))
  c = layers.blocked_attention(q, k, v, group=2, drop_rate=0.5, key=jax.random.key(2))
  np.testing.assert_array_equal(a, b)
  assert float(jnp.abs(a - c).max()) > 1e-2
  # Steps draw different masks: the two halves of the batch are not dropped alike.
  same = jnp.concatenate([q[:2], q[:2]]), jnp.concatenate([k[:2], k[:2]]), jnp.concatenate(
      [v[:2], v[:2]])
  d = layers.blocked_attention(*same, group=2, drop_rate=0.5, key=jax.random.key(1))
  assert float(jnp.abs(d[:2] - d[2:]).max()) > 1e-2
  # With v = 1 each output is the sum of the kept, rescaled probabilities: mean 1.
  ones = layers.blocked_attention(q, k, jnp.ones_like(v), group=2, drop_rate=0.5,
                                  key=jax.random.key(3))
  assert abs(float(ones.mean()) - 1.0) < 0.05


def test_loop_steps_hold_about_the_token_budget():
  devices = jax.device_count()
  assert layers.batch_group(64, 800) == layers.attention_group_size(64, devices, 2)  # 16x1000
  assert layers.batch_group(64, 80) == layers.attention_group_size(64, devices, 20)  # 8x200
  assert layers.batch_group(32, 160) == layers.attention_group_size(32, devices, 10)  # 16x200
  if devices == 1:
    assert (layers.batch_group(64, 800), layers.batch_group(32, 80)) == (2, 32)


def test_inference_batch_loop_gives_the_one_call_values(monkeypatch):
  from tinymyo_jax.models.tinymyo import create_model, decode_variant
  monkeypatch.setattr(layers, "TOKENS_PER_STEP", 160)  # 2 windows of 80 tokens per step
  model = create_model(decode_variant("test"))
  x = jax.random.normal(jax.random.key(4), (6, 8, 200))
  mask = jax.random.bernoulli(jax.random.key(5), 0.5, (6, 80))
  assert layers.batch_group(6, 80) < 6  # the loop really runs (CPU)
  looped = model(x, mask)
  single = jnp.concatenate([model(x[i:i + 1], mask[i:i + 1]) for i in range(6)])
  assert looped.shape == (6, 80, 20)
  np.testing.assert_allclose(looped, single, atol=1e-5)


LOOP_ON_MESH = """
import json
import jax, jax.numpy as jnp, numpy as np
from flax import nnx
from tinymyo_jax import sharding
from tinymyo_jax.models import layers
from tinymyo_jax.models.tinymyo import create_model, decode_variant
layers.TOKENS_PER_STEP = 160  # 2 windows of 80 tokens per device per step
model = create_model(decode_variant("test"))
graphdef, params = nnx.split(model)
x = jax.random.normal(jax.random.key(0), (64, 8, 200))
mesh = sharding.make_mesh(8, 1)  # the trainer's mesh: 8-way data parallel
xs = sharding.host_to_global(mesh, {"emg": np.asarray(x)})["emg"]
fwd = jax.jit(lambda p, x: nnx.merge(graphdef, p)(x))
out = fwd(params, xs)
hlo = fwd.lower(params, xs).compile().as_text()
ref = jnp.concatenate([model(x[i:i + 8]) for i in range(0, 64, 8)])
print("RESULT" + json.dumps(dict(group=layers.batch_group(64, 80),
      diff=float(jnp.abs(out - ref).max()), spec=str(out.sharding.spec),
      gathers=hlo.count("all-gather"))))
"""


def test_batch_loop_on_an_8_device_mesh_keeps_values_and_sharding():
  import json

  from tests.conftest import run_python
  proc = run_python(["-c", LOOP_ON_MESH],
                    env_extra={"XLA_FLAGS": "--xla_force_host_platform_device_count=8"})
  result = json.loads(proc.stdout.split("RESULT", 1)[1])
  assert result["group"] == 16  # 2 examples per device per step: 4 steps over the batch
  assert result["diff"] < 1e-5
  assert "data" in result["spec"], result
  assert result["gathers"] == 0


def test_dropout_module_drops_the_asked_share_and_rescales():
  from flax import nnx
  drop = layers.Dropout(0.25)
  x = jnp.ones((64, 256))
  y = drop(x, deterministic=False, rngs=nnx.Rngs(dropout=0))
  kept = np.asarray(y) != 0
  assert abs(kept.mean() - 0.75) < 0.01
  np.testing.assert_allclose(np.asarray(y)[kept], 1 / 0.75, rtol=1e-6)
  np.testing.assert_array_equal(drop(x, deterministic=True, rngs=None), x)
  with pytest.raises(ValueError, match="dropout rate must be in"):
    layers.Dropout(1.0)


def test_bf16_dots_take_bf16_operands_and_give_fp32_on_cpu():
  assert layers.dot_output_dtype(jnp.float32) is None
  assert layers.dot_output_dtype(jnp.bfloat16) == jnp.float32  # the tests run on CPU
  from tinymyo_jax.models.tinymyo import create_model, decode_variant
  model = create_model(decode_variant("test", dtype="bfloat16"))
  qkv = model.blocks[0].attn.qkv
  assert qkv.preferred_element_type == jnp.float32
  hlo = jax.jit(lambda x: qkv(x)).lower(jnp.ones((2, 8, 48))).as_text()
  assert "bf16" in hlo and "dot" in hlo and qkv(jnp.ones((2, 8, 48))).dtype == jnp.float32
