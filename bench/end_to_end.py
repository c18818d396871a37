"""Training from a built array_record corpus through the real grain pipeline: data-wait share.

  python bench/end_to_end.py [--corpus_mb 64] [--batch 16] [--steps 10] [--workers 0]
      [--variant tiny] [--dtype float32] [--work DIR]

Writes a synthetic emg2pose-layout corpus (16 ch, 2 kHz HDF5 sessions, `bench/input_pipeline.py`),
builds it with the emg2pose TFDS builder into array_record files, then runs the trainer's own
pieces (`input_pipeline.make_dataset` with min-max normalisation and shuffling, `host_to_global`,
the jitted and donated `steps.make_train_step`) in the trainer's loop shape: fetch a batch,
dispatch the step, fetch the next batch while the step runs, sync once per `--log_every`.

Reports the share of wall time the loop spends blocked in the data iterator (target < 5%) and
the end-to-end examples/s next to the step-only examples/s of the same compiled step on one
fixed batch (alternated: data run, step-only run, data run, ...).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build_corpus(work: Path, megabytes: int) -> Path:
  """Synthetic emg2pose sessions -> built TFDS array_record corpus; returns the data dir."""
  from bench.input_pipeline import write_synthetic_corpus
  from data_builders import build as build_lib
  manual, data_dir = work / "manual", work / "tfds"
  write_synthetic_corpus(manual, megabytes)
  build_lib.build("emg2pose", manual_dir=manual, data_dir=data_dir)
  return data_dir


def main():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--corpus_mb", type=int, default=64)
  p.add_argument("--batch", type=int, default=16)
  p.add_argument("--steps", type=int, default=10)
  p.add_argument("--rounds", type=int, default=2, help="data/step-only alternations")
  p.add_argument("--log_every", type=int, default=5)
  p.add_argument("--workers", type=int, default=0, help="grain mp_prefetch workers (0: none)")
  p.add_argument("--variant", default="tiny")
  p.add_argument("--dtype", default="float32")
  p.add_argument("--work", default="", help="scratch dir (default: a temporary one)")
  args = p.parse_args()

  import grain
  import jax

  from configs import pretrain
  from tinymyo_jax import input_pipeline, sharding, steps, train
  from tinymyo_jax.tasks import pretrain as pretrain_task

  with tempfile.TemporaryDirectory(dir=args.work or None) as tmp:
    t0 = time.perf_counter()
    data_dir = build_corpus(Path(tmp), args.corpus_mb)
    print(f"corpus: {args.corpus_mb} MB synthetic emg2pose built in "
          f"{time.perf_counter() - t0:.1f} s", flush=True)

    config = pretrain.get_config("default").unlock()
    config.model.variant, config.model.dtype = args.variant, args.dtype
    config.batch_size = args.batch
    mesh = sharding.make_mesh(-1, 1)
    tx, schedule = train.make_optimizer(config)
    graphdef, state = train.init_state(train.model_config_from(config), mesh, tx, config.seed)
    loss_fn = functools.partial(pretrain_task.pretrain_loss, mask_ratio=0.5, visible_weight=0.1)
    step = jax.jit(steps.make_train_step(graphdef, tx, loss_fn, schedule), donate_argnums=(0,))
    key = jax.random.key(0)

    dataset = input_pipeline.make_dataset(
        [input_pipeline.Source("emg2pose")], "train", data_dir=str(data_dir),
        batch_size=args.batch, seed=0, train=True, normalization="minmax", num_channels=16)
    if args.workers:
      dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=args.workers))
    it = iter(dataset)
    first = next(it)
    if first["emg"].shape[1] != 16:
      raise ValueError(f"corpus windows have shape {first['emg'].shape[1:]}, expected 16 "
                       f"channels")
    fixed = sharding.host_to_global(mesh, first)
    state, m = step(state, fixed, key)  # compile + warm-up
    jax.block_until_ready(m)

    def data_run():
      nonlocal state
      wait, pending = 0.0, []
      start = time.perf_counter()
      for i in range(args.steps):
        t = time.perf_counter()
        batch = sharding.host_to_global(mesh, next(it))
        wait += time.perf_counter() - t
        state, metrics = step(state, batch, key)
        pending.append(metrics)
        if (i + 1) % args.log_every == 0:
          jax.device_get(pending)  # the trainer's one sync per logging interval
          pending = []
      jax.block_until_ready(state)
      return wait, time.perf_counter() - start

    def step_only_run():
      nonlocal state
      start = time.perf_counter()
      for _ in range(args.steps):
        state, metrics = step(state, fixed, key)
      jax.block_until_ready((state, metrics))
      return time.perf_counter() - start

    fractions, e2e, pure = [], [], []
    for _ in range(args.rounds):
      load = os.getloadavg()[0]
      wait, wall = data_run()
      pure_wall = step_only_run()
      fractions.append(wait / wall)
      e2e.append(args.batch * args.steps / wall)
      pure.append(args.batch * args.steps / pure_wall)
      print(f"round: data wait {wait:.2f} s of {wall:.1f} s ({wait / wall:.1%}); "
            f"end-to-end {e2e[-1]:.2f} ex/s, step-only {pure[-1]:.2f} ex/s  (load {load:.1f})",
            flush=True)
    print(f"\nmedian data-wait share {np.median(fractions):.2%} (target < 5%); end-to-end "
          f"{np.median(e2e):.2f} ex/s vs step-only {np.median(pure):.2f} ex/s "
          f"({args.variant}, {args.dtype}, batch {args.batch}, {args.workers} grain workers, "
          f"loadavg {'/'.join(f'{v:.1f}' for v in os.getloadavg())})")


if __name__ == "__main__":
  main()
