"""Task heads on top of the encoder's latent tokens [B, C*S, D] (channel-major)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from tinymyo_jax.models.layers import Dropout, dense, logical, zeros

HEAD_TYPES = ("reconstruction", "classification", "regression")


def tokens_to_grid(x_bnd: jnp.ndarray, num_channels: int) -> jnp.ndarray:
  """[B, C*S, D] -> [B, S, C*D]: all channels' features side by side per time patch."""
  b, n, d = x_bnd.shape
  x = x_bnd.reshape(b, num_channels, n // num_channels, d)
  return x.transpose(0, 2, 1, 3).reshape(b, n // num_channels, num_channels * d)


class ReconstructionHead(nnx.Module):
  """Linear decoder from each token to its patch's target: the samples or `width` numbers."""

  def __init__(self, dim: int, width: int, *, dtype, rngs: nnx.Rngs):
    self.decoder_pred = dense(dim, width, ("embed", "patch"), dtype=dtype, rngs=rngs)

  def __call__(self, x_bnd, *, num_channels: int, deterministic: bool, rngs):
    del num_channels, deterministic, rngs
    return self.decoder_pred(x_bnd)  # [B, N, P]


class ClassificationHead(nnx.Module):
  """Channel fusion (`concat`: C*D features, or `mean` over channels), mean over time, linear."""

  def __init__(self, dim: int, num_channels: int, num_classes: int, reduction: str, *, dtype,
               rngs: nnx.Rngs):
    if reduction not in ("concat", "mean"):
      raise ValueError(f"unknown reduction {reduction!r}; expected 'concat' or 'mean'")
    self.reduction = reduction
    self.num_channels = num_channels
    in_features = dim * num_channels if reduction == "concat" else dim
    self.classifier = dense(in_features, num_classes, ("fused", "classes"), dtype=dtype,
                            rngs=rngs)

  def __call__(self, x_bnd, *, num_channels: int, deterministic: bool, rngs):
    del deterministic, rngs
    if num_channels != self.num_channels:
      raise ValueError(f"classification head was built for {self.num_channels} channels, "
                       f"got input with {num_channels}")
    grid = tokens_to_grid(x_bnd, num_channels)  # [B, S, C*D]
    if self.reduction == "mean":
      b, s, _ = grid.shape
      grid = grid.reshape(b, s, num_channels, -1).mean(axis=2)
    return self.classifier(grid.mean(axis=1))


def linear_resize(x_blf: jnp.ndarray, out_len: int) -> jnp.ndarray:
  """Linear interpolation along axis 1 with half-pixel centres (torch align_corners=False)."""
  in_len = x_blf.shape[1]
  src = (jnp.arange(out_len, dtype=jnp.float32) + 0.5) * (in_len / out_len) - 0.5
  src = jnp.clip(src, 0.0, in_len - 1)
  lo = jnp.floor(src).astype(jnp.int32)
  hi = jnp.minimum(lo + 1, in_len - 1)
  w = (src - lo)[None, :, None].astype(x_blf.dtype)
  return x_blf[:, lo] * (1 - w) + x_blf[:, hi] * w


class RegressionHead(nnx.Module):
  """DB8 kinematics head: 1x1 conv, SiLU, depthwise k3 conv, SiLU, 1x1 conv, upsample."""

  def __init__(self, dim: int, num_channels: int, num_outputs: int, target_len: int, *,
               hidden: int = 256, dropout: float = 0.1, dtype, rngs: nnx.Rngs):
    self.num_channels = num_channels
    self.target_len = target_len
    kinit = nnx.initializers.kaiming_uniform()
    conv = lambda i, o, k, g, axes: nnx.Conv(  # noqa: E731
        i, o, kernel_size=(k,), padding=((k // 2, k // 2),), feature_group_count=g,
        dtype=dtype, param_dtype=jnp.float32, kernel_init=logical(kinit, None, *axes),
        bias_init=logical(zeros, axes[1]), rngs=rngs)
    self.pointwise_in = conv(dim * num_channels, hidden, 1, 1, ("fused", "mlp"))
    self.depthwise = conv(hidden, hidden, 3, hidden, (None, "mlp"))
    self.pointwise_out = conv(hidden, num_outputs, 1, 1, ("mlp", "classes"))
    self.drop = Dropout(dropout)

  def __call__(self, x_bnd, *, num_channels: int, deterministic: bool, rngs):
    if num_channels != self.num_channels:
      raise ValueError(f"regression head was built for {self.num_channels} channels, "
                       f"got input with {num_channels}")
    x = tokens_to_grid(x_bnd, num_channels)  # [B, S, C*D]
    x = self.drop(jax.nn.silu(self.pointwise_in(x)), deterministic=deterministic, rngs=rngs)
    x = jax.nn.silu(self.depthwise(x))
    return linear_resize(self.pointwise_out(x), self.target_len)  # [B, L, K]
