"""Analytic model FLOPs of TinyMyo (2 FLOPs per multiply-add; matmuls only).

Counts what the model needs, not what a program executes: rematerialised attention in the
backward pass is not counted again, so MFU figures stay comparable across implementations.
A training step is forward + backward = 3x the forward FLOPs.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinymyo_jax.models.tinymyo import VARIANTS  # noqa: E402


def forward_flops(num_layers: int, embed_dim: int, mlp_ratio: float, patch_size: int,
                  channels: int, samples: int) -> int:
  """Forward FLOPs of one window through patch embedding, the blocks and the linear decoder."""
  n = channels * (samples // patch_size)
  d, hidden = embed_dim, int(embed_dim * mlp_ratio)
  linear = 2 * n * (d * 3 * d + d * d + 2 * d * hidden)  # qkv, proj, fc1, fc2
  attention = 2 * 2 * n * n * d  # q k^T and probs v, all heads together
  embed_and_head = 2 * 2 * n * patch_size * d
  return num_layers * (linear + attention) + embed_and_head


def model_flops_per_example(variant: str, channels: int, samples: int, *, train: bool) -> int:
  """FLOPs per example of a training step (3x forward) or of an eval forward."""
  v = VARIANTS[variant]
  fwd = forward_flops(v["num_layers"], v["embed_dim"], v["mlp_ratio"], v["patch_size"],
                      channels, samples)
  return 3 * fwd if train else fwd
