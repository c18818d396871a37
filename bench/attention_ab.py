"""A/B of the attention blocking in one JAX process: train step and eval forward per setting.

  python bench/attention_ab.py [--per_step 0,1,2,4] [--train_batch 16] [--eval_batch 64]
      [--reps 5] [--dtype float32] [--tasks train,eval] [--channels 16 --samples 1000]
tasks: train (= pretrain), finetune, probe (the steps of `bench/jax_steps.py`) and eval.

`--per_step` lists examples per loop step (sets `layers.TOKENS_PER_STEP` to that many windows'
tokens; 0 = one block holding the whole batch, i.e. plain [B, H, N, N] attention, no loop, no
remat). Every setting is compiled
first; then the repetitions cycle through the settings (A, B, C, A, B, C, ...). Prints the
median examples/s of each with the load average.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
from flax import nnx  # noqa: E402
from tqdm import tqdm  # noqa: E402

from bench.compare_torch import time_calls  # noqa: E402
from bench import jax_steps  # noqa: E402
from tinymyo_jax.models import layers  # noqa: E402


def build(per_step: int, args, task: str):
  """Compiles one task with the batch-loop step fixed at `per_step` examples; returns a runner.
  task: a training step kind of `bench/jax_steps.py` (pretrain, finetune, probe) or eval."""
  tokens = args.channels * args.samples // 20
  layers.TOKENS_PER_STEP = per_step * tokens if per_step else 10 ** 9
  kind = "pretrain" if task in ("train", "eval") else task
  batch = args.eval_batch if task == "eval" else args.train_batch
  step, state, data, key, graphdef, _ = jax_steps.build(
      kind, channels=args.channels, samples=args.samples, batch=batch, variant=args.variant,
      dtype=args.dtype, rope_mode=args.rope_mode)
  if task != "eval":
    fn = step.lower(state, data, key).compile()
    holder = {"state": state}

    def run():
      holder["state"], m = fn(holder["state"], data, key)
      jax.block_until_ready(m)
    return run
  fwd = jax.jit(lambda p, x: nnx.merge(graphdef, p)(x)).lower(
      state["params"], data["emg"]).compile()
  return lambda: fwd(state["params"], data["emg"]).block_until_ready()


def main():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--per_step", default="0,2")
  p.add_argument("--tasks", default="train,eval")
  p.add_argument("--train_batch", type=int, default=16)
  p.add_argument("--eval_batch", type=int, default=64)
  p.add_argument("--reps", type=int, default=5)
  p.add_argument("--dtype", default="float32")
  p.add_argument("--variant", default="tiny")
  p.add_argument("--rope_mode", default="released")
  p.add_argument("--channels", type=int, default=16)
  p.add_argument("--samples", type=int, default=1000)
  args = p.parse_args()
  settings = [int(v) for v in args.per_step.split(",")]
  for task in args.tasks.split(","):
    batch = args.eval_batch if task == "eval" else args.train_batch
    runners = {s: build(s, args, task) for s in settings}
    for r in runners.values():
      r()
    times = {s: [] for s in settings}
    load0 = os.getloadavg()[0]
    for _ in tqdm(range(args.reps), desc=task, unit="rep"):
      for s, r in runners.items():
        times[s].append(time_calls(r, 1))
    load1 = os.getloadavg()[0]
    for s in settings:
      eps = batch / float(np.median(times[s]))
      print(f"{task:5} batch {batch:3d} {args.dtype} per_step={s or 'all':>3}: "
            f"{eps:7.2f} ex/s (median of {args.reps}; runs {[round(t, 2) for t in times[s]]} s)"
            f"  load {load0:.1f}->{load1:.1f}", flush=True)


if __name__ == "__main__":
  main()
