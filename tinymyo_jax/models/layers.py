"""Transformer building blocks of TinyMyo: rotary embeddings, attention, MLP, block.

Parameters carry *logical* axis names (``embed``, ``qkv``, ``mlp``, ...); the mapping to mesh
axes lives in `tinymyo_jax.sharding`, never here.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.ad_checkpoint import checkpoint_name
from flax import nnx

ROPE_MODES = ("time", "flat", "released")

xavier = nnx.initializers.xavier_uniform()
zeros = nnx.initializers.zeros_init()
ones = nnx.initializers.ones_init()


def logical(init, *names):
  """Wraps an initializer so the created parameter carries logical axis names."""
  return nnx.with_partitioning(init, names)


def dot_output_dtype(dtype):
  """Output dtype of the model's bf16 dots: fp32 on CPU, else the compute dtype (None).

  XLA:CPU runs bf16 x bf16 -> fp32 dots 2-3x faster than bf16 -> bf16 ones (which are slower
  than fp32; see BENCHMARKS.md), and the fp32 result is also the more precise one. On
  accelerators a bf16 output halves activation traffic, so it stays bf16 there.
  """
  if jnp.dtype(dtype) == jnp.float32 or jax.default_backend() != "cpu":
    return None
  return jnp.float32


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _matmul_f32_out(x, w, precision):
  return jax.lax.dot_general(x, w, (((x.ndim - 1,), (0,)), ((), ())), precision,
                             preferred_element_type=jnp.float32)


def _matmul_f32_out_fwd(x, w, precision):
  return _matmul_f32_out(x, w, precision), (x, w)


def _matmul_f32_out_bwd(precision, residuals, g):
  x, w = residuals
  g = g.astype(x.dtype)  # the fp32 cotangent in the operands' dtype: both backward dots native
  lead = tuple(range(x.ndim - 1))
  dx = jax.lax.dot_general(g, w, (((g.ndim - 1,), (1,)), ((), ())), precision,
                           preferred_element_type=jnp.float32)
  dw = jax.lax.dot_general(x, g, ((lead, lead), ((), ())), precision,
                           preferred_element_type=jnp.float32)
  return dx.astype(x.dtype), dw.astype(w.dtype)


_matmul_f32_out.defvjp(_matmul_f32_out_fwd, _matmul_f32_out_bwd)


def low_precision_dot_general(lhs, rhs, dimension_numbers, precision=None,
                              preferred_element_type=None, out_sharding=None):
  """A Linear layer's `x @ W` for bf16 operands with an fp32 result, whose backward dots also
  take bf16 operands: with JAX's own rule the fp32 cotangent meets the bf16 operand and XLA:CPU
  runs both backward dots in fp32, as slow as an fp32 layer (BENCHMARKS.md). As in autocast
  mixed precision, the cotangent is rounded to bf16 there; accumulation stays fp32."""
  (contract, batch) = dimension_numbers
  if (contract != ((lhs.ndim - 1,), (0,)) or batch != ((), ()) or out_sharding is not None
      or preferred_element_type != jnp.float32):
    raise ValueError(f"low_precision_dot_general handles a Linear layer's x @ W with an fp32 "
                     f"result, got dimension numbers {dimension_numbers}, "
                     f"preferred_element_type {preferred_element_type}")
  return _matmul_f32_out(lhs, rhs, precision)


def dense(in_features: int, out_features: int, axes: tuple[str | None, str | None], *,
          dtype, rngs: nnx.Rngs) -> nnx.Linear:
  """A Linear layer (Xavier-uniform kernel, zero bias) with logical axes on its params."""
  out_dtype = dot_output_dtype(dtype)
  return nnx.Linear(
      in_features, out_features, dtype=dtype, param_dtype=jnp.float32,
      preferred_element_type=out_dtype,
      dot_general=low_precision_dot_general if out_dtype is not None else jax.lax.dot_general,
      kernel_init=logical(xavier, *axes), bias_init=logical(zeros, axes[1]), rngs=rngs)


def layer_norm(dim: int, *, dtype, rngs: nnx.Rngs) -> nnx.LayerNorm:
  """LayerNorm with PyTorch's default epsilon (1e-5), params in fp32."""
  return nnx.LayerNorm(
      dim, epsilon=1e-5, dtype=dtype, param_dtype=jnp.float32,
      scale_init=logical(ones, "embed"), bias_init=logical(zeros, "embed"), rngs=rngs)


# ----------------------------------------------------------------------------- RoPE


def rope_positions(mode: str, num_channels: int, num_patches: int) -> jnp.ndarray:
  """Position of each token (channel-major order n = c*S + t) for a RoPE mode.

  `time`: the patch's time index t, shared by all channels at the same instant.
  `flat`: the token index n.
  """
  if mode == "time":
    return jnp.tile(jnp.arange(num_patches), num_channels)
  if mode == "flat":
    return jnp.arange(num_channels * num_patches)
  raise ValueError(f"rope_positions: mode {mode!r} has no token positions")


def rotate_interleaved(x: jnp.ndarray, angles: jnp.ndarray) -> jnp.ndarray:
  """Rotates interleaved pairs (2j, 2j+1) of the last axis by `angles[..., j]` (in fp32)."""
  dtype = x.dtype
  x = x.astype(jnp.float32).reshape(*x.shape[:-1], -1, 2)
  cos, sin = jnp.cos(angles), jnp.sin(angles)
  even, odd = x[..., 0], x[..., 1]
  out = jnp.stack([even * cos - odd * sin, odd * cos + even * sin], axis=-1)
  return out.reshape(*out.shape[:-2], -1).astype(dtype)


def apply_rope(q_bnhd: jnp.ndarray, k_bnhd: jnp.ndarray, mode: str, num_channels: int,
               base: float = 10000.0) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Applies rotary embeddings to q and k of shape [B, N, H, Dh].

  `released` reproduces the released PyTorch code: the rotation angle is indexed by the *head*
  number (head h turned by h*theta for every token). It cancels in q.k, so it carries no position.
  """
  _, n, h, dh = q_bnhd.shape
  theta = base ** (-jnp.arange(0, dh, 2, dtype=jnp.float32) / dh)  # [Dh/2]
  if mode == "released":
    angles = (jnp.arange(h, dtype=jnp.float32)[:, None] * theta)[None, :, :]  # [1, H, Dh/2]
  else:
    pos = rope_positions(mode, num_channels, n // num_channels).astype(jnp.float32)
    angles = (pos[:, None] * theta)[:, None, :]  # [N, 1, Dh/2]
  return rotate_interleaved(q_bnhd, angles), rotate_interleaved(k_bnhd, angles)


# ----------------------------------------------------------------------------- blocks


class Dropout(nnx.Module):
  """Inverted dropout whose mask comes from `keep_mask` (16-bit draws, ~2x cheaper on CPU
  than `nnx.Dropout`'s threefry `bernoulli`; the keep probability is exact to 1/65536)."""

  def __init__(self, rate: float):
    if not 0.0 <= rate < 1.0:
      raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
    self.rate = rate

  def mask_shape(self, x) -> tuple[int, ...]:
    """One decision per element."""
    return x.shape

  def __call__(self, x, *, deterministic: bool, rngs: nnx.Rngs | None):
    if deterministic or self.rate == 0.0:
      return x
    keep = 1.0 - self.rate
    mask = keep_mask(rngs.dropout(), keep, self.mask_shape(x))
    return jnp.where(mask, x / keep, 0).astype(x.dtype)


class DropPath(Dropout):
  """Stochastic depth: drops the whole residual branch per example."""

  def mask_shape(self, x) -> tuple[int, ...]:
    return (x.shape[0],) + (1,) * (x.ndim - 1)


# Tokens per device that one step of the blocked attention loop (and of the encoder's batch loop
# in `TinyMyo.encode`) handles: two 16x1000 windows (800 tokens each). Their [H, N, N] logits are
# 7.7 MB per window in fp32, so a step's logits stay in cache instead of streaming a [B, H, N, N]
# array (hundreds of MB) through memory several times. Short windows take more examples per
# step: at 80 tokens a loop step of 2 examples costs more in slicing and stacking than it saves
# (see BENCHMARKS.md).
TOKENS_PER_STEP = 1600


def attention_group_size(batch: int, num_devices: int, per_device: int) -> int:
  """Examples per step of the blocked attention: the smallest divisor of `batch` that gives
  every device `per_device` examples, or the batch."""
  target = min(batch, per_device * num_devices)
  return next(g for g in range(target, batch + 1) if batch % g == 0)


def keep_mask(key, keep: float, shape: tuple[int, ...]) -> jnp.ndarray:
  """Boolean dropout mask, True with probability `keep` (to 1/65536).

  Each 32-bit random word gives two 16-bit draws: half the random bits of `bernoulli` and no
  float conversion, ~2x faster on CPU, where the attention-dropout mask ([B, H, N, N] per layer)
  otherwise costs more than the attention matmuls.
  """
  if not shape or shape[-1] % 2:
    return jax.random.bernoulli(key, keep, shape)
  words = jax.random.bits(key, (*shape[:-1], shape[-1] // 2), jnp.uint32)
  draws = jax.lax.bitcast_convert_type(words, jnp.uint16).reshape(shape)
  return draws < jnp.uint16(min(round(keep * 65536), 65535))


def batch_group(batch: int, tokens: int) -> int:
  """Examples per step of the batch loops on this backend for windows of `tokens` tokens: on CPU
  about `TOKENS_PER_STEP` tokens per device (cache reuse); accelerators take the whole batch in
  one step (their parallelism needs it)."""
  if jax.default_backend() != "cpu":
    return batch
  per_device = max(1, -(-TOKENS_PER_STEP // max(tokens, 1)))
  return attention_group_size(batch, jax.device_count(), per_device)


def softmax_attention(q_bhnd, k_bhnd, v_bhnd, *, drop_rate: float = 0.0, key=None):
  """softmax(q k^T / sqrt(Dh)) v for [G, H, N, Dh] inputs; logits and softmax in fp32.

  With `drop_rate` > 0 the probabilities are dropped out with a mask drawn from `key`.
  Returns [G, N, H, Dh].
  """
  with jax.named_scope("softmax_attention"):
    scale = jnp.asarray(q_bhnd.shape[-1] ** -0.5, q_bhnd.dtype)
    logits = jnp.einsum("ghnd,ghmd->ghnm", q_bhnd * scale, k_bhnd,
                        preferred_element_type=jnp.float32)
    probs = jax.nn.softmax(logits, axis=-1)
    if drop_rate > 0.0:
      keep = checkpoint_name(keep_mask(key, 1.0 - drop_rate, probs.shape), "attention_keep")
      probs = jnp.where(keep, probs / (1.0 - drop_rate), 0.0)
    return jnp.einsum("ghnm,ghmd->gnhd", probs.astype(v_bhnd.dtype), v_bhnd,
                      preferred_element_type=dot_output_dtype(v_bhnd.dtype))


def blocked_attention(q_bhnd, k_bhnd, v_bhnd, *, group: int, drop_rate: float = 0.0,
                      key=None):
  """`softmax_attention` over the batch in steps of `group` examples; returns [B, N, H, Dh].

  Each step is rematerialised in the backward pass (`jax.checkpoint`), so neither pass keeps
  [B, H, N, N] arrays: the flash-attention trade of a second QK^T for far less memory traffic.
  Example b = g*S + s goes to step s, so a batch sharded in contiguous blocks over devices
  stays sharded along the in-step axis and the loop needs no communication.
  """
  b = q_bhnd.shape[0]
  steps = b // group
  if steps == 1:
    return softmax_attention(q_bhnd, k_bhnd, v_bhnd, drop_rate=drop_rate, key=key)

  # Recompute logits and softmax in the backward pass, but keep the dropout mask (1 byte per
  # logit) rather than drawing it again.
  @functools.partial(jax.checkpoint,
                     policy=jax.checkpoint_policies.save_only_these_names("attention_keep"))
  def step(_, xs):
    q, k, v, i = xs
    step_key = None if key is None else jax.random.fold_in(key, i)
    return None, softmax_attention(q, k, v, drop_rate=drop_rate, key=step_key)

  xs = batch_to_steps((q_bhnd, k_bhnd, v_bhnd), group) + (jnp.arange(steps),)
  _, out = jax.lax.scan(step, None, xs)  # [S, G, N, H, Dh]
  return steps_to_batch(out)


def batch_to_steps(tree, group: int):
  """[B, ...] -> [B/group, group, ...] with example b = g*S + s at [s, g]: contiguous blocks of
  the batch (one per device under data parallelism) stay on the un-looped `group` axis."""
  def split(x):
    return jnp.swapaxes(x.reshape(group, x.shape[0] // group, *x.shape[1:]), 0, 1)
  return jax.tree.map(split, tree)


def steps_to_batch(tree):
  """Inverse of `batch_to_steps`."""
  return jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1).reshape(-1, *x.shape[2:]), tree)


def map_over_batch(fn, tree, group: int):
  """fn over the batch in sequential steps of `group` examples (`jax.lax.map`), so each step's
  intermediates stay cache-sized; one call when the batch is a single group."""
  batch = jax.tree.leaves(tree)[0].shape[0]
  if group >= batch:
    return fn(tree)
  return steps_to_batch(jax.lax.map(fn, batch_to_steps(tree, group)))


class Attention(nnx.Module):
  """Multi-head self-attention with fused qkv and rotary embeddings on q and k."""

  def __init__(self, dim: int, num_heads: int, *, rope_mode: str, attn_drop: float,
               proj_drop: float, dtype, rngs: nnx.Rngs):
    if dim % num_heads:
      raise ValueError(f"embed dim {dim} is not divisible by num_heads {num_heads}")
    self.num_heads = num_heads
    self.rope_mode = rope_mode
    self.qkv = dense(dim, 3 * dim, ("embed", "qkv"), dtype=dtype, rngs=rngs)
    self.proj = dense(dim, dim, ("heads", "embed"), dtype=dtype, rngs=rngs)
    self.attn_drop = Dropout(attn_drop)
    self.proj_drop = Dropout(proj_drop)

  def __call__(self, x_bnd, *, num_channels: int, deterministic: bool, rngs):
    b, n, d = x_bnd.shape
    h = self.num_heads
    qkv = self.qkv(x_bnd).reshape(b, n, 3, h, d // h)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    q, k = apply_rope(q, k, self.rope_mode, num_channels)
    # The attention dots compute in the model's dtype (qkv may come out fp32, `dot_output_dtype`).
    q, k, v = (t.astype(self.qkv.dtype or t.dtype) for t in (q, k, v))
    drop_rate = 0.0 if deterministic else self.attn_drop.rate
    key = rngs.dropout() if drop_rate > 0.0 else None
    q, k, v = (jnp.swapaxes(t, 1, 2) for t in (q, k, v))  # [B, H, N, Dh]
    out = blocked_attention(q, k, v, group=batch_group(b, n),
                            drop_rate=drop_rate, key=key).reshape(b, n, d)
    return self.proj_drop(self.proj(out), deterministic=deterministic, rngs=rngs)


class Mlp(nnx.Module):
  """fc1 -> exact GELU -> dropout -> fc2 -> dropout."""

  def __init__(self, dim: int, hidden: int, *, drop: float, dtype, rngs: nnx.Rngs):
    self.fc1 = dense(dim, hidden, ("embed", "mlp"), dtype=dtype, rngs=rngs)
    self.fc2 = dense(hidden, dim, ("mlp", "embed"), dtype=dtype, rngs=rngs)
    self.drop = Dropout(drop)

  def __call__(self, x, *, deterministic: bool, rngs):
    x = self.fc1(x)
    with jax.named_scope("gelu"):
      x = jax.nn.gelu(x, approximate=False)
    x = self.drop(x, deterministic=deterministic, rngs=rngs)
    return self.drop(self.fc2(x), deterministic=deterministic, rngs=rngs)


class Block(nnx.Module):
  """Pre-LayerNorm Transformer block: x += DropPath(Attn(LN(x))); x += DropPath(MLP(LN(x)))."""

  def __init__(self, dim: int, num_heads: int, mlp_ratio: float, *, rope_mode: str,
               dropout: float, attn_dropout: float, drop_path: float, dtype, rngs: nnx.Rngs):
    self.norm1 = layer_norm(dim, dtype=dtype, rngs=rngs)
    self.attn = Attention(dim, num_heads, rope_mode=rope_mode, attn_drop=attn_dropout,
                          proj_drop=dropout, dtype=dtype, rngs=rngs)
    self.norm2 = layer_norm(dim, dtype=dtype, rngs=rngs)
    self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=dropout, dtype=dtype, rngs=rngs)
    self.drop_path = DropPath(drop_path)

  def __call__(self, x, *, num_channels: int, deterministic: bool, rngs):
    # Named scopes label the ops in profiles and HLO dumps (`bench/profile_step.py`).
    kw = dict(deterministic=deterministic, rngs=rngs)
    with jax.named_scope("layer_norm"):
      h = self.norm1(x)
    with jax.named_scope("attention"):
      h = self.attn(h, num_channels=num_channels, **kw)
    x = x + self.drop_path(h, **kw)
    with jax.named_scope("layer_norm"):
      h = self.norm2(x)
    with jax.named_scope("mlp"):
      h = self.mlp(h, **kw)
    return x + self.drop_path(h, **kw)
