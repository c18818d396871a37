"""Functional forward pass of the deployed TinyMyo classifier with named quantisation points.

The same function serves three purposes, chosen by the `point` callback it receives:
float inference (`identity_point`), calibration (a recorder of activation statistics) and
fake-quantised inference (quantise-dequantise at every point, `fake_quant.fake_quant_point`).
The points are exactly the int8 tensors of the integer pipeline (`export/gap9/int_reference.py`),
so the three paths cut the network at the same places.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from tinymyo_jax.models.tinymyo import ModelConfig

Point = Callable[[str, jnp.ndarray], jnp.ndarray]
LN_EPS = 1e-5


def identity_point(name: str, x: jnp.ndarray) -> jnp.ndarray:
  """The float model: no quantisation anywhere."""
  del name
  return x


def check_deployable(config: ModelConfig) -> None:
  """Raises ValueError if the config uses an operator the GAP9 pipeline does not implement."""
  if config.head != "classification":
    raise ValueError(f"unsupported operator: head {config.head!r} (the GAP9 pipeline deploys "
                     f"only the 'classification' head with a linear classifier)")
  if config.rope_mode not in ("released", "time"):
    raise ValueError(f"unsupported operator: rope_mode {config.rope_mode!r} (supported: "
                     f"'released', which is a no-op in q.k, and 'time')")
  if config.reduction not in ("concat", "mean"):
    raise ValueError(f"unsupported operator: reduction {config.reduction!r}")
  if config.embed_dim % config.num_heads or (config.embed_dim // config.num_heads) % 2:
    raise ValueError(f"unsupported head split: embed_dim {config.embed_dim} / num_heads "
                     f"{config.num_heads} must be an even integer")


def rope_tables(num_patches: int, head_dim: int, base: float = 10000.0):
  """Float cos/sin [S, Dh/2] for time positions 0..S-1 (interleaved-pair RoPE)."""
  theta = base ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
  ang = np.arange(num_patches, dtype=np.float64)[:, None] * theta[None, :]
  return np.cos(ang), np.sin(ang)


def rotate_time(x_bnhd: jnp.ndarray, cos_sd: jnp.ndarray, sin_sd: jnp.ndarray) -> jnp.ndarray:
  """Interleaved RoPE with each token's time index t = n mod S (the `time` mode)."""
  b, n, h, dh = x_bnhd.shape
  reps = n // cos_sd.shape[0]
  cos = jnp.tile(cos_sd, (reps, 1))[None, :, None, :]
  sin = jnp.tile(sin_sd, (reps, 1))[None, :, None, :]
  pair = x_bnhd.reshape(b, n, h, dh // 2, 2)
  even, odd = pair[..., 0], pair[..., 1]
  out = jnp.stack([even * cos - odd * sin, odd * cos + even * sin], axis=-1)
  return out.reshape(b, n, h, dh)


def layer_norm(x, scale, bias):
  mean = x.mean(-1, keepdims=True)
  var = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) / jnp.sqrt(var + LN_EPS) * scale + bias


def block(p, x, i: int, config: ModelConfig, point: Point, rope):
  """One pre-LN block on the residual stream x [B, N, D] (already a quantised point)."""
  b, n, d = x.shape
  h = config.num_heads
  dh = d // h
  y = point(f"b{i}.ln1", layer_norm(x, p["norm1"]["scale"], p["norm1"]["bias"]))
  qkv = y @ p["attn"]["qkv"]["kernel"] + p["attn"]["qkv"]["bias"]
  q = point(f"b{i}.q", qkv[..., :d]).reshape(b, n, h, dh)
  k = point(f"b{i}.k", qkv[..., d:2 * d]).reshape(b, n, h, dh)
  v = point(f"b{i}.v", qkv[..., 2 * d:]).reshape(b, n, h, dh)
  if rope is not None:  # `released` RoPE cancels in q.k and is skipped (as in ARES)
    q = point(f"b{i}.q_rot", rotate_time(q, *rope))
    k = point(f"b{i}.k_rot", rotate_time(k, *rope))
  logits = jnp.einsum("bnhd,bmhd->bhnm", q, k) / np.sqrt(dh)
  probs = point(f"b{i}.probs", jax.nn.softmax(logits, axis=-1))
  att = point(f"b{i}.attn", jnp.einsum("bhnm,bmhd->bnhd", probs, v).reshape(b, n, d))
  proj = point(f"b{i}.proj", att @ p["attn"]["proj"]["kernel"] + p["attn"]["proj"]["bias"])
  x = point(f"b{i}.res1", x + proj)
  y = point(f"b{i}.ln2", layer_norm(x, p["norm2"]["scale"], p["norm2"]["bias"]))
  f1 = point(f"b{i}.fc1", y @ p["mlp"]["fc1"]["kernel"] + p["mlp"]["fc1"]["bias"])
  g = point(f"b{i}.gelu", jax.nn.gelu(f1, approximate=False))
  f2 = point(f"b{i}.fc2", g @ p["mlp"]["fc2"]["kernel"] + p["mlp"]["fc2"]["bias"])
  return point(f"b{i}.res2", x + f2)


def forward(params, config: ModelConfig, x_bct: jnp.ndarray, point: Point = identity_point):
  """Logits [B, K] of the classifier; `point(name, tensor)` is applied at every int8 tensor."""
  check_deployable(config)
  b, c, t = x_bct.shape
  if c != config.num_channels:
    raise ValueError(f"input has {c} channels, the classifier was built for "
                     f"{config.num_channels}")
  s = t // config.patch_size
  x = point("input", x_bct).reshape(b, c * s, config.patch_size)
  x = point("embed", x @ params["patch_embed"]["kernel"] + params["patch_embed"]["bias"])
  rope = None
  if config.rope_mode == "time":
    rope = tuple(jnp.asarray(a, jnp.float32)
                 for a in rope_tables(s, config.embed_dim // config.num_heads))
  for i in range(config.num_layers):
    x = block(params["blocks"][i], x, i, config, point, rope)
  x = point("norm", layer_norm(x, params["norm"]["scale"], params["norm"]["bias"]))
  d = x.shape[-1]
  grid = x.reshape(b, c, s, d)
  if config.reduction == "concat":
    pooled = grid.mean(axis=2).reshape(b, c * d)  # feature index c*D + d
  else:
    pooled = grid.mean(axis=(1, 2))
  pooled = point("pool", pooled)
  head = params["head"]["classifier"]
  return point("logits", pooled @ head["kernel"] + head["bias"])
