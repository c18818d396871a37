"""XLA:CPU matmul rate by operand and output dtype, on TinyMyo-shaped and square matmuls.

Shows why the model's bf16 dots ask for an fp32 result on CPU (`layers.dot_output_dtype`):
bf16 x bf16 -> bf16 is slower than fp32 here, bf16 x bf16 -> fp32 is 2-3x faster than fp32.

Usage: python bench/dot_dtypes.py [--reps 20]
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

# [tokens of two 16x1000 windows, in] x [in, out]: the qkv, fc1, fc2 layers; and 2048^3.
SHAPES = ((1600, 192, 576), (1600, 192, 768), (1600, 768, 192), (2048, 2048, 2048))


def median_s(fn, *args, reps: int) -> float:
  fn(*args).block_until_ready()
  times = []
  for _ in range(reps):
    t = time.perf_counter()
    fn(*args).block_until_ready()
    times.append(time.perf_counter() - t)
  return float(np.median(times))


def main():
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("--reps", type=int, default=20)
  args = p.parse_args()
  variants = {
      "fp32": (jnp.float32, None),
      "bf16 -> bf16": (jnp.bfloat16, None),
      "bf16 -> fp32": (jnp.bfloat16, jnp.float32),
  }
  print(f"jax {jax.__version__}, {jax.devices()}, load {os.getloadavg()[0]:.1f}; GFLOP/s")
  print(f"{'m x k x n':>18} " + " ".join(f"{name:>13}" for name in variants))
  for m, k, n in SHAPES:
    a = jax.random.normal(jax.random.key(0), (m, k))
    b = jax.random.normal(jax.random.key(1), (k, n))
    rates = []
    for dtype, out in variants.values():
      fn = jax.jit(lambda x, y, out=out: jnp.matmul(x, y, preferred_element_type=out))
      seconds = median_s(fn, a.astype(dtype), b.astype(dtype), reps=args.reps)
      rates.append(2 * m * k * n / seconds / 1e9)
    print(f"{f'{m} x {k} x {n}':>18} " + " ".join(f"{r:>13.0f}" for r in rates))


if __name__ == "__main__":
  main()
