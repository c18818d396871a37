"""Times the compiled fine-tuning step of a Gaddy speech task; reports examples/s and ms/step.

The batch is synthetic: `--batch` utterances of `--samples` EMG samples (8 channels, 1 kHz) with
random transcripts of `--chars` characters (recognition) or random MFCC targets (synthesis),
through the same `train.init_state` / `steps.make_train_step` / task loss as `make finetune`.

Usage: python bench/speech_step.py [--task gaddy_recognition|gaddy_synthesis] [--batch 8
                                    --samples 4000 --chars 60 --steps 3 --variant tiny]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from bench.timing import median_step_ms  # noqa: E402

from configs import finetune  # noqa: E402
from tinymyo_jax import sharding, speech_units, steps, tasks, train  # noqa: E402


def synthetic_batch(task: str, batch: int, samples: int, chars: int, seed: int = 0) -> dict:
  """Full-length utterances: standardized-like EMG, and labels or MFCC frames."""
  rng = np.random.default_rng(seed)
  out = {"emg": rng.standard_normal((batch, samples, 8), dtype=np.float32),
         "emg_len": np.full(batch, samples, np.int32)}
  if task == "speech_recognition":
    out["labels"] = rng.integers(1, speech_units.NUM_CHAR_CLASSES, (batch, chars), dtype=np.int32)
    out["label_len"] = np.full(batch, chars, np.int32)
  else:
    out["mfcc"] = rng.standard_normal((batch, speech_units.output_length(samples), 26),
                                      dtype=np.float32)
  return out


def main():
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("--task", default="gaddy_recognition",
                 choices=["gaddy_recognition", "gaddy_synthesis"])
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--samples", type=int, default=4000)
  p.add_argument("--chars", type=int, default=60)
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--variant", default="tiny")
  args = p.parse_args()

  config = finetune.get_config(args.task).unlock()
  config.model.variant = args.variant
  config.batch_size = args.batch
  config.total_steps = 1000
  mesh = sharding.make_mesh(-1, 1)
  tx, schedule = train.make_optimizer(config)
  graphdef, state = train.init_state(train.model_config_from(config), mesh, tx, config.seed)
  step_fn = steps.make_train_step(graphdef, tx, tasks.get(config.task).loss_fn(config), schedule)
  batch = sharding.host_to_global(mesh, synthetic_batch(config.task, args.batch, args.samples,
                                                        args.chars))
  key = jax.random.key(0)

  t0 = time.perf_counter()
  compiled = jax.jit(step_fn, donate_argnums=(0,)).lower(state, batch, key).compile()
  compile_s = time.perf_counter() - t0
  ms, state, m = median_step_ms(compiled, state, batch, key, steps=args.steps)
  print(json.dumps({
      "task": args.task, "variant": args.variant, "batch": args.batch,
      "utterance_samples": args.samples, "chars": args.chars if "labels" in batch else None,
      "compile_s": round(compile_s, 1), "ms_per_step_median": round(ms, 1),
      "examples_per_s": round(args.batch * 1000 / ms, 2),
      "emg_seconds_per_s": round(args.batch * args.samples / ms, 2),
      "loss": float(m["loss"]), "jax": jax.__version__, "devices": str(jax.devices()),
      "cpu_count": os.cpu_count(), "machine": platform.processor() or platform.machine(),
  }, indent=2))


if __name__ == "__main__":
  main()
