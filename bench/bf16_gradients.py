"""How close bf16 gradients are to fp32 ones: JAX's own backward vs `low_precision_dot_general`.

The tiny classifier (8 x 200 windows, 6 classes, no dropout), one batch of 32 heavy-tailed
windows, the same init in every dtype; prints the cosine and the relative L2 error of each bf16
gradient against the fp32 one.

Usage: python bench/bf16_gradients.py
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402

from tinymyo_jax.models import layers  # noqa: E402
from tinymyo_jax.models.tinymyo import create_model, decode_variant  # noqa: E402


def gradient(dtype: str, jax_backward: bool = False) -> np.ndarray:
  saved = layers.low_precision_dot_general
  if jax_backward:  # the Linear layers then take JAX's own transpose rule
    layers.low_precision_dot_general = jax.lax.dot_general
  try:
    model = create_model(decode_variant(
        "tiny", dtype=dtype, head="classification", num_channels=8, num_outputs=6,
        dropout=0.0, attn_dropout=0.0, drop_path=0.0))
  finally:
    layers.low_precision_dot_general = saved
  graphdef, params = nnx.split(model)
  x = jnp.asarray(np.random.default_rng(0).standard_t(4, size=(32, 8, 200)).astype(np.float32))
  y = jnp.asarray(np.random.default_rng(1).integers(0, 6, 32))

  def loss(p):
    logits = nnx.merge(graphdef, p)(x).astype(jnp.float32)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  g = jax.jit(jax.grad(loss))(params)
  return np.concatenate([np.asarray(leaf, np.float64).ravel() for leaf in jax.tree.leaves(g)])


def main():
  ref = gradient("float32")
  for name, g in (("bf16, JAX's backward (fp32 cotangent)", gradient("bfloat16", True)),
                  ("bf16, bf16 cotangent (low_precision_dot_general)", gradient("bfloat16"))):
    cos = g @ ref / np.linalg.norm(g) / np.linalg.norm(ref)
    rel = np.linalg.norm(g - ref) / np.linalg.norm(ref)
    print(f"{name}: cosine {cos:.6f}, relative L2 error {rel:.4f}")


if __name__ == "__main__":
  main()
