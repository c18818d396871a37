"""Attention alone, TinyMyo shapes: plain [B, H, N, N] einsum-softmax vs `layers.blocked_attention`.

  python bench/attention_kernel.py [--batch 16] [--group 1,2] [--reps 5] [--dtype float32]

Times the forward and forward+backward (gradient of a weighted sum) of each variant,
alternating the variants every repetition; prints median ms and achieved GFLOP/s of the two
attention matmuls (4 B H N^2 Dh forward, 3x that with the backward).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from bench.compare_torch import time_calls  # noqa: E402
from tinymyo_jax.models import layers  # noqa: E402


def main():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--batch", type=int, default=16)
  p.add_argument("--tokens", type=int, default=800)
  p.add_argument("--heads", type=int, default=3)
  p.add_argument("--head_dim", type=int, default=64)
  p.add_argument("--group", default="1,2", help="examples per step of the blocked variants")
  p.add_argument("--reps", type=int, default=5)
  p.add_argument("--dtype", default="float32")
  args = p.parse_args()
  b, h, n, d = args.batch, args.heads, args.tokens, args.head_dim
  keys = jax.random.split(jax.random.key(0), 4)
  q, k, v = (jax.random.normal(kk, (b, h, n, d), args.dtype) for kk in keys[:3])
  w = jax.random.normal(keys[3], (b, n, h, d), args.dtype)
  variants = {"plain": lambda q, k, v: layers.softmax_attention(q, k, v)}
  for g in (int(x) for x in args.group.split(",")):
    variants[f"blocked g={g}"] = lambda q, k, v, g=g: layers.blocked_attention(q, k, v, group=g)
  runs = {}
  for name, f in variants.items():
    fwd = jax.jit(f)
    bwd = jax.jit(jax.grad(lambda q, k, v, f=f: jnp.sum((f(q, k, v) * w).astype(jnp.float32)),
                           argnums=(0, 1, 2)))
    runs[(name, "fwd")] = lambda fwd=fwd: fwd(q, k, v).block_until_ready()
    runs[(name, "fwd+bwd")] = lambda bwd=bwd: jax.block_until_ready(bwd(q, k, v))
  for r in runs.values():
    r()
  times = {key: [] for key in runs}
  load0 = os.getloadavg()[0]
  for _ in range(args.reps):
    for key, r in runs.items():
      times[key].append(time_calls(r, 1))
  flops = 4 * b * h * n * n * d
  for (name, kind), t in times.items():
    s = float(np.median(t))
    f = flops * (3 if kind == "fwd+bwd" else 1)
    print(f"{name:12} {kind:8} {1e3 * s:8.1f} ms  {f / s / 1e9:6.1f} GFLOP/s  "
          f"(batch {b}, {args.dtype}, load {load0:.1f}->{os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
  main()
