"""TinyMyo model: parameter counts, shapes, RoPE modes, masking, released-code parity."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tests.conftest import FIXTURES, need_shared
from tinymyo_jax.masking import random_patch_mask
from tinymyo_jax.models import layers
from tinymyo_jax.models.tinymyo import count_params, create_model, decode_variant


def test_full_pretraining_model_has_paper_param_count():
  model = create_model(decode_variant("tiny"))
  assert count_params(model) == 3_567_380


def test_small_variant_param_count():
  assert count_params(create_model(decode_variant("small"))) == 1_787_924


@pytest.mark.parametrize("head,kw,expected", [
    ("classification", dict(num_channels=8, num_outputs=6), 3_572_742),
    ("classification", dict(num_channels=16, num_outputs=53), 3_726_389),
    ("regression", dict(num_channels=16, num_outputs=5), 4_352_517),
])
def test_head_param_counts_match_released_code(head, kw, expected):
  assert count_params(create_model(decode_variant("tiny", head=head, **kw))) == expected


@pytest.mark.parametrize("shape", [(2, 16, 1000), (2, 8, 1000), (2, 8, 200), (2, 16, 40)])
def test_variable_channels_and_window(shape):
  model = create_model(decode_variant("test"))
  out = model(jnp.ones(shape))
  b, c, t = shape
  assert out.shape == (b, c * t // 20, 20)
  assert bool(jnp.all(jnp.isfinite(out)))


def test_heads_output_shapes():
  x = jnp.ones((3, 8, 200))
  cls = create_model(decode_variant("test", head="classification", num_channels=8, num_outputs=6))
  assert cls(x).shape == (3, 6)
  mean = create_model(decode_variant("test", head="classification", num_channels=8,
                                     num_outputs=4, reduction="mean"))
  assert mean(x).shape == (3, 4)
  reg = create_model(decode_variant("test", head="regression", num_channels=8, num_outputs=5,
                                    target_len=100))
  assert reg(x).shape == (3, 100, 5)


@pytest.mark.parametrize("x_shape,match", [
    ((8, 1000), "rank 3"),
    ((1, 17, 1000), "17 channels"),
    ((1, 8, 1010), "1010 is not divisible"),
])
def test_bad_input_shapes_raise_clear_errors(x_shape, match):
  model = create_model(decode_variant("test"))
  with pytest.raises(ValueError, match=match):
    model(jnp.ones(x_shape))


def test_unknown_rope_mode_and_variant():
  with pytest.raises(ValueError, match="rope_mode 'spiral'"):
    decode_variant("tiny", rope_mode="spiral")
  with pytest.raises(ValueError, match="variant 'huge'"):
    decode_variant("huge")


def test_rope_preserves_norm_and_relative_positions():
  key = jax.random.key(0)
  q = jax.random.normal(key, (1, 2 * 5, 3, 64))
  k = jax.random.normal(jax.random.key(1), (1, 2 * 5, 3, 64))
  rq, rk = layers.apply_rope(q, k, "flat", num_channels=2)
  np.testing.assert_allclose(jnp.linalg.norm(rq, axis=-1), jnp.linalg.norm(q, axis=-1),
                             rtol=1e-5)
  # Shifting every position by the same offset leaves q.k unchanged (relative encoding).
  angles = lambda p: (p[:, None] * 10000.0 ** (-jnp.arange(0, 64, 2) / 64))[:, None, :]
  pos = jnp.arange(10.0)
  dot = lambda a, b: jnp.einsum("bnhd,bmhd->bhnm", a, b)
  d0 = dot(layers.rotate_interleaved(q, angles(pos)), layers.rotate_interleaved(k, angles(pos)))
  d7 = dot(layers.rotate_interleaved(q, angles(pos + 7)),
           layers.rotate_interleaved(k, angles(pos + 7)))
  np.testing.assert_allclose(d0, d7, atol=2e-4)


def test_time_mode_shares_positions_across_channels():
  pos = layers.rope_positions("time", num_channels=3, num_patches=4)
  np.testing.assert_array_equal(pos, [0, 1, 2, 3] * 3)
  np.testing.assert_array_equal(layers.rope_positions("flat", 3, 4), np.arange(12))


def test_released_rope_is_inert_but_time_rope_is_not():
  x = jax.random.normal(jax.random.key(0), (1, 4, 200))
  perm = np.random.default_rng(0).permutation(40)

  def permuted_output_error(mode):
    model = create_model(decode_variant("test", rope_mode=mode))
    patches = x.reshape(1, 40, 20)
    out = model(x)
    out_p = model(patches[:, perm].reshape(1, 4, 200))
    return float(jnp.abs(out_p - out[:, perm]).max())

  # Released RoPE carries no position: the encoder is permutation-equivariant over tokens.
  assert permuted_output_error("released") < 1e-4
  assert permuted_output_error("time") > 1e-2


def test_masked_tokens_get_mask_token_and_all_false_mask_is_identity():
  model = create_model(decode_variant("test"))
  x = jax.random.normal(jax.random.key(0), (2, 8, 200))
  none = model(x)
  all_false = model(x, jnp.zeros((2, 80), bool))
  np.testing.assert_array_equal(none, all_false)
  mask = random_patch_mask(jax.random.key(3), 2, 80, 0.5)
  assert int(mask.sum()) == 80  # exactly half of each example's 80 tokens
  np.testing.assert_array_equal(mask.sum(axis=1), [40, 40])
  assert float(jnp.abs(model(x, mask) - none).max()) > 1e-3


def test_dropout_only_in_training():
  model = create_model(decode_variant("test"))
  x = jnp.ones((2, 8, 200))
  np.testing.assert_array_equal(model(x), model(x))
  a = model(x, deterministic=False, rngs=nnx.Rngs(dropout=0))
  b = model(x, deterministic=False, rngs=nnx.Rngs(dropout=1))
  assert float(jnp.abs(a - b).max()) > 1e-4


def test_bfloat16_compute_keeps_fp32_params():
  model = create_model(decode_variant("test", dtype="bfloat16"))
  assert model.blocks[0].attn.qkv.kernel[...].dtype == jnp.float32
  out32 = create_model(decode_variant("test"))(jnp.ones((1, 8, 200)))
  out16 = model(jnp.ones((1, 8, 200)))
  assert out16.dtype == jnp.float32
  np.testing.assert_allclose(out16, out32, atol=0.1)


def _equations(jaxpr):
  """Every equation of a jaxpr and of the jaxprs nested in its equations' params."""
  for eqn in jaxpr.eqns:
    yield eqn
    for value in eqn.params.values():
      for sub in value if isinstance(value, (tuple, list)) else (value,):
        inner = getattr(sub, "jaxpr", sub)
        if hasattr(inner, "eqns"):
          yield from _equations(inner)


def test_low_precision_dense_backward_runs_bf16_dots_with_fp32_gradients_close():
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 10, 192))
  w = jax.random.normal(jax.random.PRNGKey(1), (192, 96)) / 14.0
  dims = (((2,), (0,)), ((), ()))

  def loss(dot, x, w):
    return jnp.sum(jnp.tanh(dot(x.astype(jnp.bfloat16), w.astype(jnp.bfloat16), dims,
                                preferred_element_type=jnp.float32)))

  want = jax.grad(functools.partial(loss, jax.lax.dot_general), argnums=(0, 1))(x, w)
  got = jax.grad(functools.partial(loss, layers.low_precision_dot_general), argnums=(0, 1))(x, w)
  for g, r in zip(got, want):
    assert g.dtype == jnp.float32
    np.testing.assert_allclose(g, r, rtol=0.05, atol=0.02 * float(jnp.abs(r).max()))
  # Every dot of the backward pass takes bf16 operands (JAX's own rule: an fp32 cotangent).
  jaxpr = jax.make_jaxpr(jax.grad(functools.partial(loss, layers.low_precision_dot_general),
                                  argnums=(0, 1)))(x, w)
  dots = [e for e in _equations(jaxpr.jaxpr) if e.primitive.name == "dot_general"]
  assert len(dots) == 3 and all(v.aval.dtype == jnp.bfloat16 for e in dots for v in e.invars)
  with pytest.raises(ValueError, match="Linear layer's x @ W"):
    layers.low_precision_dot_general(x, w, (((0,), (0,)), ((), ())),
                                     preferred_element_type=jnp.float32)


def _load_official(model, state_dict):
  """Minimal official-layout loader for this test (the export package has the real one)."""
  sd = {k.removeprefix("model."): v for k, v in state_dict.items()}
  params = {
      "mask_token": sd["mask_token"],
      "patch_embed": {"kernel": sd["patch_embedding.patch_embed.proj.weight"].reshape(192, 20).T,
                      "bias": sd["patch_embedding.patch_embed.proj.bias"]},
      "norm": {"scale": sd["norm.weight"], "bias": sd["norm.bias"]},
      "blocks": {}, "head": {},
  }
  for i in range(8):
    p = f"blocks.{i}."
    lin = lambda n: {"kernel": sd[p + n + ".weight"].T, "bias": sd[p + n + ".bias"]}  # noqa
    ln = lambda n: {"scale": sd[p + n + ".weight"], "bias": sd[p + n + ".bias"]}  # noqa
    params["blocks"][i] = {"norm1": ln("norm1"), "norm2": ln("norm2"),
                           "attn": {"qkv": lin("attn.qkv"), "proj": lin("attn.proj")},
                           "mlp": {"fc1": lin("mlp.fc1"), "fc2": lin("mlp.fc2")}}
  for name in ("decoder_pred", "classifier"):
    if f"model_head.{name}.weight" in sd:
      params["head"][name] = {"kernel": sd[f"model_head.{name}.weight"].T,
                              "bias": sd[f"model_head.{name}.bias"]}
  from tinymyo_jax.models.tinymyo import load_pure_params
  load_pure_params(model, params)


def test_released_mode_reproduces_official_pretraining_outputs():
  safetensors = pytest.importorskip("safetensors.numpy")
  sd = safetensors.load_file(str(need_shared(FIXTURES / "tinymyo_pretrain_seed0.safetensors")))
  io = np.load(need_shared(FIXTURES / "pretrain_io.npz"))
  model = create_model(decode_variant("tiny", rope_mode="released"))
  _load_official(model, sd)
  x = jnp.asarray(io["x"])
  np.testing.assert_allclose(model.embed(x), io["tokens_nomask"], atol=1e-5)
  np.testing.assert_allclose(model(x), io["out_nomask"], atol=1e-5)
  np.testing.assert_allclose(model(x, jnp.asarray(io["mask_patches"])), io["out_masked"],
                             atol=1e-5)
