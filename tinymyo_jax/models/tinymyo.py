"""TinyMyo: a channel-independent patch Transformer encoder for sEMG, with task heads.

Input x [B, C, T]. Each channel is cut into P-sample patches and the *same* linear projection
embeds every patch. Tokens are channel-major: channel c, patch t sits at index c*S + t, S = T/P.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from tinymyo_jax.models import heads as heads_lib
from tinymyo_jax.models import layers
from tinymyo_jax.models.layers import ROPE_MODES, Block, dense, layer_norm, logical

# Architecture variants, as in the paper's tables ("tiny" is TinyMyo itself).
VARIANTS = {
    "tiny": dict(num_layers=8, embed_dim=192, num_heads=3, mlp_ratio=4.0, patch_size=20),
    "small": dict(num_layers=4, embed_dim=192, num_heads=3, mlp_ratio=4.0, patch_size=20),
    # For tests only: same shapes everywhere except depth and width.
    "test": dict(num_layers=2, embed_dim=48, num_heads=3, mlp_ratio=2.0, patch_size=20),
}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Everything that fixes the model's parameters and forward math."""

  num_layers: int = 8
  embed_dim: int = 192
  num_heads: int = 3
  mlp_ratio: float = 4.0
  patch_size: int = 20
  max_channels: int = 16
  rope_mode: str = "time"
  dropout: float = 0.1
  attn_dropout: float = 0.1
  drop_path: float = 0.1
  dtype: str = "float32"  # compute dtype; params stay fp32
  head: str = "reconstruction"
  num_channels: int = 16  # channels the head fuses (classification / regression)
  num_outputs: int = 0  # classes, regression outputs, or numbers per patch (0: the patch)
  reduction: str = "concat"
  target_len: int = 500  # regression output length

  def __post_init__(self):
    if self.rope_mode not in ROPE_MODES:
      raise ValueError(f"unknown rope_mode {self.rope_mode!r}; expected one of {ROPE_MODES}")
    if self.head not in heads_lib.HEAD_TYPES:
      raise ValueError(f"unknown head {self.head!r}; expected one of {heads_lib.HEAD_TYPES}")
    if self.dtype not in ("float32", "bfloat16"):
      raise ValueError(f"unknown dtype {self.dtype!r}; expected 'float32' or 'bfloat16'")


def decode_variant(variant: str, **overrides) -> ModelConfig:
  """ModelConfig for a named variant ('tiny', 'small', 'test') with field overrides."""
  if variant not in VARIANTS:
    raise ValueError(f"unknown model variant {variant!r}; expected one of {sorted(VARIANTS)}")
  return ModelConfig(**{**VARIANTS[variant], **overrides})


def trunc_normal(std: float):
  """Normal(0, std) truncated at +-std (the released mask-token init)."""
  def init(key, shape, dtype=jnp.float32):
    return std * jax.random.truncated_normal(key, -1.0, 1.0, shape, dtype)
  return init


class TinyMyo(nnx.Module):
  """Encoder + head. `__call__(x_bct, mask_bn=None)` returns the head's output."""

  def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
    c = config
    self.config = c
    dtype = jnp.dtype(c.dtype)
    self.patch_embed = dense(c.patch_size, c.embed_dim, ("patch", "embed"), dtype=dtype,
                             rngs=rngs)
    self.mask_token = nnx.Param(
        logical(trunc_normal(0.02), None, None, "embed")(rngs.params(), (1, 1, c.embed_dim)))
    self.blocks = nnx.List([
        Block(c.embed_dim, c.num_heads, c.mlp_ratio, rope_mode=c.rope_mode, dropout=c.dropout,
              attn_dropout=c.attn_dropout, drop_path=c.drop_path, dtype=dtype, rngs=rngs)
        for _ in range(c.num_layers)])
    # Residual output projections shrink with depth (block k of L scaled by 1/sqrt(2k)).
    for k, block in enumerate(self.blocks, start=1):
      for layer in (block.attn.proj, block.mlp.fc2):
        layer.kernel[...] = layer.kernel[...] / jnp.sqrt(2.0 * k)
    self.norm = layer_norm(c.embed_dim, dtype=dtype, rngs=rngs)
    if c.head == "reconstruction":
      self.head = heads_lib.ReconstructionHead(c.embed_dim, c.num_outputs or c.patch_size,
                                               dtype=dtype, rngs=rngs)
    elif c.head == "classification":
      self.head = heads_lib.ClassificationHead(c.embed_dim, c.num_channels, c.num_outputs,
                                               c.reduction, dtype=dtype, rngs=rngs)
    else:
      self.head = heads_lib.RegressionHead(c.embed_dim, c.num_channels, c.num_outputs,
                                           c.target_len, dropout=c.dropout, dtype=dtype,
                                           rngs=rngs)

  def check_input(self, x) -> None:
    """Raises a ValueError naming the problem if x is not a valid [B, C, T] window batch."""
    c = self.config
    if x.ndim != 3:
      raise ValueError(f"input must have rank 3 [batch, channels, samples], got shape {x.shape}")
    if x.shape[1] > c.max_channels:
      raise ValueError(f"input has {x.shape[1]} channels, above the configured maximum "
                       f"max_channels={c.max_channels}")
    if x.shape[2] % c.patch_size:
      raise ValueError(f"window length {x.shape[2]} is not divisible by the patch size "
                       f"{c.patch_size}")

  def embed(self, x_bct) -> jnp.ndarray:
    """Patch embedding: [B, C, T] -> tokens [B, C*S, D] in channel-major order."""
    b, ch, t = x_bct.shape
    patches = x_bct.reshape(b, ch * (t // self.config.patch_size), self.config.patch_size)
    with jax.named_scope("patch_embed"):
      return self.patch_embed(patches.astype(jnp.dtype(self.config.dtype)))

  def encode(self, x_bct, mask_bn=None, *, deterministic: bool = True,
             rngs: nnx.Rngs | None = None) -> jnp.ndarray:
    """Latent tokens [B, C*S, D] after the final LayerNorm. mask_bn: True = masked token.

    The batch runs in sequential steps of about `layers.TOKENS_PER_STEP` tokens per device
    (`jax.lax.map`; short windows take more examples per step): the same
    values, with cache-sized intermediates (about 1.8x faster at batch 64 on CPU). In training
    each step draws its dropout masks from its own key, split from `rngs.dropout()`.
    """
    self.check_input(x_bct)
    batch, channels, samples = x_bct.shape
    group = layers.batch_group(batch, channels * (samples // self.config.patch_size))
    if group >= batch:
      return self._encode(x_bct, mask_bn, deterministic=deterministic, rngs=rngs)
    keys = None if deterministic or rngs is None else jax.random.split(rngs.dropout(), batch)

    def step(args):
      x, mask, k = args
      step_rngs = None if k is None else nnx.Rngs(dropout=k[0])
      return self._encode(x, mask, deterministic=deterministic, rngs=step_rngs)

    return layers.map_over_batch(step, (x_bct, mask_bn, keys), group)

  def residual_streams(self, x_bct, mask_bn=None, *, deterministic: bool = True, rngs=None):
    """Yields the residual stream [B, C*S, D] after the patch embedding and after each block,
    before the final LayerNorm (one batch group; `encode` adds the grouping and the norm)."""
    num_channels = x_bct.shape[1]
    # The residual stream stays fp32 under bf16 compute (as with torch.autocast): only the
    # branches' matmuls run in bf16, so rounding does not pile up over the blocks.
    x = self.embed(x_bct).astype(jnp.float32)
    if mask_bn is not None:
      x = jnp.where(mask_bn[..., None], self.mask_token[...].astype(x.dtype), x)
    yield x
    for block in self.blocks:
      x = block(x, num_channels=num_channels, deterministic=deterministic, rngs=rngs)
      yield x

  def _encode(self, x_bct, mask_bn, *, deterministic: bool, rngs) -> jnp.ndarray:
    *_, x = self.residual_streams(x_bct, mask_bn, deterministic=deterministic, rngs=rngs)
    with jax.named_scope("layer_norm"):
      return self.norm(x)

  def __call__(self, x_bct, mask_bn=None, *, deterministic: bool = True,
               rngs: nnx.Rngs | None = None, frozen_encoder: bool = False) -> jnp.ndarray:
    """Head output. frozen_encoder (linear probing): the encoder runs deterministically under
    `stop_gradient`, so no backward pass goes through it; only the head trains."""
    if frozen_encoder:
      latent = jax.lax.stop_gradient(self.encode(x_bct, mask_bn, deterministic=True))
    else:
      latent = self.encode(x_bct, mask_bn, deterministic=deterministic, rngs=rngs)
    with jax.named_scope("head"):
      out = self.head(latent, num_channels=x_bct.shape[1], deterministic=deterministic,
                      rngs=rngs)
    return out.astype(jnp.float32)


def count_params(model: nnx.Module) -> int:
  """Number of scalar parameters (nnx.Param leaves)."""
  return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def unpatchify(patches_bnp: jnp.ndarray, num_channels: int) -> jnp.ndarray:
  """[B, C*S, P] -> [B, C, S*P]."""
  b, n, p = patches_bnp.shape
  return patches_bnp.reshape(b, num_channels, (n // num_channels) * p)


def patchify(x_bct: jnp.ndarray, patch_size: int) -> jnp.ndarray:
  """[B, C, T] -> [B, C*S, P] (channel-major)."""
  b, c, t = x_bct.shape
  return x_bct.reshape(b, c * (t // patch_size), patch_size)


def create_model(config: ModelConfig, *, seed: int = 0, params=None) -> TinyMyo:
  """Builds TinyMyo; with `params` (a pure nested dict, e.g. from a checkpoint) loads them.

  Params are created unsharded here; the trainer shards them itself from their logical axes.
  """
  with nnx.use_eager_sharding(False):
    model = TinyMyo(config, rngs=nnx.Rngs(seed))
  if params is not None:
    load_pure_params(model, params)
  return model


def load_pure_params(model: TinyMyo, params) -> None:
  """Copies a pure nested dict of arrays into the model, checking names and shapes."""
  state = nnx.state(model, nnx.Param)
  expected = dict(jax.tree_util.tree_flatten_with_path(nnx.to_pure_dict(state))[0])
  given = dict(jax.tree_util.tree_flatten_with_path(int_keys(params))[0])
  fmt = jax.tree_util.keystr
  missing = sorted(fmt(k) for k in expected.keys() - given.keys())
  unexpected = sorted(fmt(k) for k in given.keys() - expected.keys())
  if missing or unexpected:
    raise ValueError(f"parameters do not match the model: missing {missing}, "
                     f"unexpected {unexpected}")
  for k, v in given.items():
    if tuple(v.shape) != tuple(expected[k].shape):
      raise ValueError(f"parameter {fmt(k)} has shape {tuple(v.shape)}, the model expects "
                       f"{tuple(expected[k].shape)}")
  nnx.replace_by_pure_dict(state, int_keys(params))
  nnx.update(model, state)


def int_keys(tree):
  """Checkpoint dicts come back with string keys ('0'); nnx.List wants ints."""
  if isinstance(tree, dict):
    return {(int(k) if isinstance(k, str) and k.isdigit() else k): int_keys(v)
            for k, v in tree.items()}
  return tree
