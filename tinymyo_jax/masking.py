"""Random patch masking for masked-reconstruction pretraining."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def random_patch_mask(key: jax.Array, batch: int, num_tokens: int, ratio: float) -> jnp.ndarray:
  """Boolean mask [B, N] with exactly int(ratio * N) masked tokens (True) per example."""
  if not 0.0 <= ratio < 1.0:
    raise ValueError(f"mask ratio must be in [0, 1), got {ratio}")
  num_masked = int(ratio * num_tokens)
  noise = jax.random.uniform(key, (batch, num_tokens))
  ranks = jnp.argsort(jnp.argsort(noise, axis=-1), axis=-1)
  return ranks < num_masked
