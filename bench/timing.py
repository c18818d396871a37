"""Shared timing helper for the step benchmarks."""

from __future__ import annotations

import time

import jax
import numpy as np


def median_step_ms(compiled, state, *args, steps: int):
  """Runs `state, metrics = compiled(state, *args)` once to warm up, then `steps` timed times.

  Returns (median milliseconds per step, final state, last metrics).
  """
  state, metrics = compiled(state, *args)
  jax.block_until_ready(metrics)
  times = []
  for _ in range(steps):
    t = time.perf_counter()
    state, metrics = compiled(state, *args)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - t)
  return 1000 * float(np.median(times)), state, metrics
