"""TinyMyo as a plain `torch.nn.Module`, with the official parameter names.

Written for this project (not copied from the released code). Parameter names follow the
released state dict without its `model.` prefix, so `load_state_dict(strict=True)` takes an
official checkpoint directly. The forward math matches `tinymyo_jax.models` (and, with
`rope_mode="released"`, the released code): channel-major tokens n = c*S + t, pre-LN blocks,
interleaved RoPE with base 10000 and a final LayerNorm, then one of three heads.

No JAX import here: the module also serves as the PyTorch side of speed comparisons, so it
avoids graph breaks (static shapes, `F.scaled_dot_product_attention`) for `torch.compile`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROPE_MODES = ("time", "flat", "released")
HEAD_TYPES = ("reconstruction", "classification", "regression")
REGRESSION_HIDDEN = 256


@dataclasses.dataclass(frozen=True)
class TorchConfig:
  """The fields of `tinymyo_jax.models.tinymyo.ModelConfig` that fix this module."""

  num_layers: int = 8
  embed_dim: int = 192
  num_heads: int = 3
  mlp_ratio: float = 4.0
  patch_size: int = 20
  rope_mode: str = "released"
  dropout: float = 0.1
  attn_dropout: float = 0.1
  drop_path: float = 0.1
  head: str = "reconstruction"
  num_channels: int = 16
  num_outputs: int = 0
  reduction: str = "concat"
  target_len: int = 500

  def __post_init__(self):
    if self.rope_mode not in ROPE_MODES:
      raise ValueError(f"unknown rope_mode {self.rope_mode!r}; expected one of {ROPE_MODES}")
    if self.head not in HEAD_TYPES:
      raise ValueError(f"unknown head {self.head!r}; expected one of {HEAD_TYPES}")
    if self.reduction not in ("concat", "mean"):
      raise ValueError(f"unknown reduction {self.reduction!r}; expected 'concat' or 'mean'")
    if self.embed_dim % self.num_heads:
      raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads "
                       f"{self.num_heads}")

  @classmethod
  def from_model_config(cls, config) -> TorchConfig:
    """Takes the matching fields of a Flax `ModelConfig` (or any dataclass / dict)."""
    data = config if isinstance(config, dict) else dataclasses.asdict(config)
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


# ----------------------------------------------------------------------------- RoPE


def rope_angles(mode: str, num_heads: int, head_dim: int, num_channels: int,
                num_patches: int, device=None, base: float = 10000.0) -> torch.Tensor:
  """Rotation angles broadcastable against q/k of shape [B, H, N, Dh/2].

  `released`: head h is turned by h*theta for every token (cancels in q.k; the released code's
  behaviour). `time`: position t of token n = c*S + t. `flat`: position n.
  """
  theta = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim)
  if mode == "released":
    pos = torch.arange(num_heads, dtype=torch.float32, device=device)
    return (pos[:, None] * theta)[None, :, None, :]  # [1, H, 1, Dh/2]
  if mode == "time":
    pos = torch.arange(num_patches, dtype=torch.float32, device=device).repeat(num_channels)
  elif mode == "flat":
    pos = torch.arange(num_channels * num_patches, dtype=torch.float32, device=device)
  else:
    raise ValueError(f"unknown rope_mode {mode!r}; expected one of {ROPE_MODES}")
  return (pos[:, None] * theta)[None, None, :, :]  # [1, 1, N, Dh/2]


def rotate_interleaved(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
  """Rotates pairs (2j, 2j+1) of the last axis; computed in float32."""
  dtype = x.dtype
  pairs = x.float().unflatten(-1, (-1, 2))
  even, odd = pairs[..., 0], pairs[..., 1]
  out = torch.stack((even * cos - odd * sin, odd * cos + even * sin), dim=-1)
  return out.flatten(-2).to(dtype)


# ----------------------------------------------------------------------------- blocks


class DropPath(nn.Module):
  """Stochastic depth: zeroes the whole residual branch per example, rescales the rest."""

  def __init__(self, rate: float):
    super().__init__()
    self.rate = rate

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    if not self.training or self.rate == 0.0:
      return x
    keep = 1.0 - self.rate
    mask = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), device=x.device,
                       dtype=x.dtype).bernoulli_(keep)
    return x * mask / keep


class Attention(nn.Module):
  """Fused-qkv multi-head self-attention with RoPE on q and k."""

  def __init__(self, dim: int, num_heads: int, attn_drop: float, proj_drop: float):
    super().__init__()
    self.num_heads = num_heads
    self.attn_drop = attn_drop
    self.qkv = nn.Linear(dim, 3 * dim)
    self.proj = nn.Linear(dim, dim)
    self.proj_drop = nn.Dropout(proj_drop)

  def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    b, n, d = x.shape
    qkv = self.qkv(x).view(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]  # [B, H, N, Dh]
    q, k = rotate_interleaved(q, cos, sin), rotate_interleaved(k, cos, sin)
    out = F.scaled_dot_product_attention(
        q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
    return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, d)))


class Mlp(nn.Module):
  """fc1 -> exact GELU -> dropout -> fc2 -> dropout."""

  def __init__(self, dim: int, hidden: int, drop: float):
    super().__init__()
    self.fc1 = nn.Linear(dim, hidden)
    self.fc2 = nn.Linear(hidden, dim)
    self.drop = nn.Dropout(drop)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.drop(self.fc2(self.drop(F.gelu(self.fc1(x)))))


class Block(nn.Module):
  """Pre-LN Transformer block with DropPath on both residual branches."""

  def __init__(self, c: TorchConfig):
    super().__init__()
    dim = c.embed_dim
    self.norm1 = nn.LayerNorm(dim, eps=1e-5)
    self.attn = Attention(dim, c.num_heads, c.attn_dropout, c.dropout)
    self.norm2 = nn.LayerNorm(dim, eps=1e-5)
    self.mlp = Mlp(dim, int(dim * c.mlp_ratio), c.dropout)
    self.drop_path = DropPath(c.drop_path)

  def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    x = x + self.drop_path(self.attn(self.norm1(x), cos, sin))
    return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
  """Holds the official Conv2d(1, D, (1, P)) weights; applies them as one linear map."""

  def __init__(self, patch_size: int, dim: int):
    super().__init__()
    self.proj = nn.Conv2d(1, dim, kernel_size=(1, patch_size), stride=(1, patch_size))

  def forward(self, x_bct: torch.Tensor) -> torch.Tensor:
    b, c, t = x_bct.shape
    p = self.proj.kernel_size[1]
    patches = x_bct.reshape(b, c * (t // p), p)  # channel-major tokens
    return F.linear(patches, self.proj.weight.flatten(1), self.proj.bias)


class PatchEmbedding(nn.Module):
  """Name wrapper: the official key is `patch_embedding.patch_embed.proj.*`."""

  def __init__(self, patch_size: int, dim: int):
    super().__init__()
    self.patch_embed = PatchEmbed(patch_size, dim)

  def forward(self, x_bct: torch.Tensor) -> torch.Tensor:
    return self.patch_embed(x_bct)


# ----------------------------------------------------------------------------- heads


def tokens_to_grid(x_bnd: torch.Tensor, num_channels: int) -> torch.Tensor:
  """[B, C*S, D] -> [B, S, C*D] (feature index c*D + d)."""
  b, n, d = x_bnd.shape
  return x_bnd.view(b, num_channels, n // num_channels, d).transpose(1, 2).reshape(
      b, n // num_channels, num_channels * d)


class ReconstructionHead(nn.Module):
  def __init__(self, c: TorchConfig):
    super().__init__()
    self.decoder_pred = nn.Linear(c.embed_dim, c.num_outputs or c.patch_size)

  def forward(self, x_bnd: torch.Tensor, num_channels: int) -> torch.Tensor:
    return self.decoder_pred(x_bnd)


class ClassificationHead(nn.Module):
  def __init__(self, c: TorchConfig):
    super().__init__()
    self.reduction = c.reduction
    fused = c.embed_dim * c.num_channels if c.reduction == "concat" else c.embed_dim
    self.classifier = nn.Linear(fused, c.num_outputs)

  def forward(self, x_bnd: torch.Tensor, num_channels: int) -> torch.Tensor:
    grid = tokens_to_grid(x_bnd, num_channels)
    if self.reduction == "mean":
      grid = grid.unflatten(-1, (num_channels, -1)).mean(dim=2)
    return self.classifier(grid.mean(dim=1))


class RegressionHead(nn.Module):
  def __init__(self, c: TorchConfig):
    super().__init__()
    h = REGRESSION_HIDDEN
    self.target_len = c.target_len
    self.regressor = nn.Sequential(
        nn.Conv1d(c.embed_dim * c.num_channels, h, 1), nn.SiLU(), nn.Dropout(c.dropout),
        nn.Conv1d(h, h, 3, padding=1, groups=h), nn.SiLU(), nn.Conv1d(h, c.num_outputs, 1))

  def forward(self, x_bnd: torch.Tensor, num_channels: int) -> torch.Tensor:
    x = self.regressor(tokens_to_grid(x_bnd, num_channels).transpose(1, 2))  # [B, K, S]
    x = F.interpolate(x, size=self.target_len, mode="linear", align_corners=False)
    return x.transpose(1, 2)  # [B, L, K]


HEADS = {"reconstruction": ReconstructionHead, "classification": ClassificationHead,
         "regression": RegressionHead}


# ----------------------------------------------------------------------------- model


class TinyMyoTorch(nn.Module):
  """TinyMyo encoder + head. `forward(x_bct, mask=None)` returns the head output.

  mask: boolean patch mask [B, C*S] (True = masked), or the released element mask [B, C, T]
  (a patch is masked when any of its samples is). Outputs: reconstruction [B, N, P],
  classification logits [B, K], regression [B, target_len, K].
  """

  def __init__(self, config: TorchConfig):
    super().__init__()
    c = self.config = config
    self.mask_token = nn.Parameter(torch.zeros(1, 1, c.embed_dim))
    self.patch_embedding = PatchEmbedding(c.patch_size, c.embed_dim)
    self.blocks = nn.ModuleList(Block(c) for _ in range(c.num_layers))
    self.norm = nn.LayerNorm(c.embed_dim, eps=1e-5)
    self.model_head = HEADS[c.head](c)
    self.reset_parameters()

  @torch.no_grad()
  def reset_parameters(self) -> None:
    """The released init: Xavier linears, zero biases, depth-scaled residual projections."""
    for m in self.modules():
      if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        nn.init.zeros_(m.bias)
      elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
      elif isinstance(m, nn.Conv1d):
        nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
        nn.init.zeros_(m.bias)
    w = self.patch_embedding.patch_embed.proj.weight
    w.copy_(nn.init.xavier_uniform_(torch.empty(w.shape[0], w[0].numel())).view_as(w))
    nn.init.trunc_normal_(self.mask_token, std=0.02, a=-0.02, b=0.02)
    for k, block in enumerate(self.blocks, start=1):
      block.attn.proj.weight.div_(math.sqrt(2.0 * k))
      block.mlp.fc2.weight.div_(math.sqrt(2.0 * k))

  def check_input(self, x: torch.Tensor) -> None:
    c = self.config
    if x.ndim != 3:
      raise ValueError(f"input must have rank 3 [batch, channels, samples], got {tuple(x.shape)}")
    if x.shape[2] % c.patch_size:
      raise ValueError(f"window length {x.shape[2]} is not divisible by the patch size "
                       f"{c.patch_size}")
    if c.head != "reconstruction" and x.shape[1] != c.num_channels:
      raise ValueError(f"{c.head} head was built for {c.num_channels} channels, got input with "
                       f"{x.shape[1]}")

  def _patch_mask(self, mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    b, ch, t = x.shape
    n = ch * (t // self.config.patch_size)
    if mask.shape == (b, ch, t):
      return mask.reshape(b, n, self.config.patch_size).any(dim=-1)
    if mask.shape == (b, n):
      return mask.bool()
    raise ValueError(f"mask must have shape [B, N]={[b, n]} or [B, C, T]={[b, ch, t]}, got "
                     f"{list(mask.shape)}")

  def encode(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Latent tokens [B, C*S, D] after the final LayerNorm."""
    self.check_input(x)
    c = self.config
    b, ch, t = x.shape
    tokens = self.patch_embedding(x)
    if mask is not None:
      tokens = torch.where(self._patch_mask(mask, x)[..., None],
                           self.mask_token.to(tokens.dtype), tokens)
    angles = rope_angles(c.rope_mode, c.num_heads, c.embed_dim // c.num_heads, ch,
                         t // c.patch_size, device=x.device)
    cos, sin = torch.cos(angles), torch.sin(angles)
    for block in self.blocks:
      tokens = block(tokens, cos, sin)
    return self.norm(tokens)

  def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    return self.model_head(self.encode(x, mask), x.shape[1])


class EncoderOnly(nn.Module):
  """Wraps a TinyMyoTorch so that `forward` returns the latent tokens (for export)."""

  def __init__(self, model: TinyMyoTorch):
    super().__init__()
    self.model = model

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.model.encode(x)


def build(config, state_dict=None) -> TinyMyoTorch:
  """Builds a TinyMyoTorch; loads an official state dict (`model.` prefix optional) strictly."""
  if not isinstance(config, TorchConfig):
    config = TorchConfig.from_model_config(config)
  model = TinyMyoTorch(config)
  if state_dict is not None:
    prefix = "model."
    if state_dict and all(k.startswith(prefix) for k in state_dict):
      state_dict = {k[len(prefix):]: v for k, v in state_dict.items()}
    model.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in state_dict.items()},
                          strict=True)
  return model
