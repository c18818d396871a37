"""Fine-tuning throughput of every window task: the compiled train step on batches of its shape.

Each task's window shape (channels x samples) comes from its config and its builder config, the
batch is synthetic (standardized-like EMG, random labels or joint angles), and the step is the
one `make finetune` runs (`train.init_state`, `steps.make_train_step`, the task's loss, LLRD).
Speech tasks have their own script (`bench/speech_step.py`: variable-length utterances).

Usage: python bench/finetune_step.py [--tasks uci,uci_200hz,db5,epn612,db8] [--batch 32]
                                     [--steps 5] [--variant tiny] [--frozen]
                                     [--dtype float32|bfloat16]
--frozen times the linear-probing step (`finetune.freeze_backbone=True`: the head alone trains,
no backward pass through the encoder).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from bench.timing import median_step_ms  # noqa: E402

from configs import finetune  # noqa: E402
from data_builders import registry  # noqa: E402
from tinymyo_jax import cpu_features, sharding, steps, tasks, train  # noqa: E402

WINDOW_TASKS = ("uci", "uci_200hz", "db5", "epn612", "db8")


def window_of(config) -> int:
  """Samples per window of the task's (first) dataset config."""
  name, builder_config, _ = config.data.sources[0]
  return registry.get_builder(name, config=builder_config).builder_config.window


def synthetic_batch(config, batch: int, samples: int, seed: int = 0) -> dict:
  """EMG [B, C, T] plus the task's target: integer labels or angles [B, K, T]."""
  rng = np.random.default_rng(seed)
  channels, outputs = config.model.num_channels, config.model.num_outputs
  out = {"emg": rng.standard_normal((batch, channels, samples), dtype=np.float32)}
  if config.task == "classification":
    out["label"] = rng.integers(0, outputs, batch, dtype=np.int32)
  else:
    out["angles"] = rng.standard_normal((batch, outputs, samples), dtype=np.float32)
  return out


def time_task(task: str, batch: int, num_steps: int, variant: str, frozen: bool = False,
              dtype: str = "float32") -> dict:
  """Compiles and times one task's train step; returns its figures."""
  config = finetune.get_config(task).unlock()
  config.model.variant, config.model.dtype = variant, dtype
  config.finetune.freeze_backbone = frozen
  config.batch_size = batch
  config.total_steps = 1000
  samples = window_of(config)
  mesh = sharding.make_mesh(-1, 1)
  tx, schedule = train.make_optimizer(config)
  graphdef, state = train.init_state(train.model_config_from(config), mesh, tx, config.seed)
  step_fn = steps.make_train_step(graphdef, tx, tasks.get(config.task).loss_fn(config), schedule)
  data = sharding.host_to_global(mesh, synthetic_batch(config, batch, samples))
  key = jax.random.key(0)
  t0 = time.perf_counter()
  compiled = jax.jit(step_fn, donate_argnums=(0,)).lower(state, data, key).compile()
  compile_s = time.perf_counter() - t0
  ms, _, metrics = median_step_ms(compiled, state, data, key, steps=num_steps)
  tokens = config.model.num_channels * samples // 20
  return {"task": task + (" (frozen)" if frozen else ""), "dtype": dtype,
          "input": f"{config.model.num_channels}x{samples}", "tokens": tokens,
          "batch": batch, "compile_s": round(compile_s, 1), "ms_per_step": round(ms, 1),
          "examples_per_s": round(batch * 1000 / ms, 2), "loss": round(float(metrics["loss"]), 4)}


def main():
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("--tasks", default=",".join(WINDOW_TASKS))
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--steps", type=int, default=5)
  p.add_argument("--variant", default="tiny")
  p.add_argument("--frozen", action="store_true", help="time the linear-probing step")
  p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                 help="compute dtype (params, optimizer state and loss stay fp32)")
  args = p.parse_args()
  tasks = args.tasks.split(",")
  unknown = [t for t in tasks if t not in WINDOW_TASKS]
  if unknown:
    p.error(f"unknown window task(s) {unknown}; choose from {WINDOW_TASKS}")
  print(f"jax {jax.__version__}, {jax.devices()}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.1f}\n{cpu_features.describe(jax.default_backend())}")
  print(f"{'task':10} {'input':>8} {'tokens':>6} {'batch':>5} {'ms/step':>9} {'ex/s':>7}")
  for task in tasks:
    r = time_task(task, args.batch, args.steps, args.variant, args.frozen, args.dtype)
    print(f"{r['task']:10} {r['input']:>8} {r['tokens']:>6} {r['batch']:>5} "
          f"{r['ms_per_step']:>9.1f} {r['examples_per_s']:>7.2f}", flush=True)
    print(json.dumps(r), file=sys.stderr)
  print(f"load after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
  main()
