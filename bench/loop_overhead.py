"""The real training loop against its compiled step alone: loop overhead and idle fraction.

  python bench/loop_overhead.py RUN_DIR [--kind finetune] [--channels 8] [--samples 200]
      [--batch 32] [--dtype float32] [--steps 30]

RUN_DIR is a finished run (`tinymyo_jax.main` workdir, or one `seed_<k>` of a fine-tuning) whose
summary.json has the `loop` record of `reporting.LoopClock`. The script times the same compiled
step (`bench/jax_steps.py`: the trainer's step, optimizer and loss at the given shape, a fixed
synthetic batch, median of `--steps`) and prints examples/s of
  step only     the compiled step alone
  loop, steady  the run's logging intervals after the first (summary.json `examples_per_sec`)
  loop, warm    the loop's training time (evaluation and checkpoints left out) minus the compile
  loop          the same with the compile
  overall       the whole loop, evaluation and checkpoints included
each with its overhead, 1 - rate / step only (input pipeline, host transfers, logging, and any
slowdown of the step inside the loop), and the loop's seconds per part: `sync` is the host
waiting for the device, so data + dispatch bound the time the device can have waited for input.
Pass the run's own shape and dtype: the step is rebuilt from the flags, not read from the run.
Run it on a quiet machine; the figure compares two timings.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("run", type=Path, help="finished run folder with summary.json")
  p.add_argument("--kind", default="finetune", help="pretrain | finetune | probe")
  p.add_argument("--channels", type=int, default=8)
  p.add_argument("--samples", type=int, default=200)
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--dtype", default="float32")
  p.add_argument("--steps", type=int, default=30, help="timed steps of the compiled step")
  args = p.parse_args(argv)

  summary_path = args.run / "summary.json"
  if not summary_path.exists():
    p.error(f"no summary.json in {args.run}")
  summary = json.loads(summary_path.read_text())
  loop = summary.get("loop")
  if not loop:
    p.error(f"{summary_path} has no `loop` record (a run from before the loop clock, or a re-run "
            f"of a finished one)")

  import jax

  from bench import jax_steps, timing
  from tinymyo_jax import cpu_features

  print(cpu_features.describe(jax.default_backend()))
  step, state, data, key, *_ = jax_steps.build(args.kind, channels=args.channels,
                                               samples=args.samples, batch=args.batch,
                                               dtype=args.dtype)
  ms, _, _ = timing.median_step_ms(step, state, data, key, steps=args.steps)
  step_eps = 1000 * args.batch / ms
  steady = summary["examples_per_sec"]  # logging intervals after the first (which compiles)
  examples = loop.get("examples", loop["examples_per_sec_training"] * loop["train_seconds"])
  warm = examples / (loop["train_seconds"] - loop.get("compile_seconds", 0.0))
  print(f"{args.kind} {args.channels}x{args.samples} batch {args.batch} {args.dtype}")
  rows = [("step only", step_eps, f"{ms:.1f} ms/step, median of {args.steps}"),
          ("loop, steady", steady, "logging intervals after the first"),
          ("loop, warm", warm, f"training time {loop['train_seconds']:.0f} s minus the compile"),
          ("loop", loop["examples_per_sec_training"], "training time, compile included"),
          ("overall", loop["examples_per_sec_overall"],
           f"whole loop {loop['seconds']:.0f} s, evaluation and checkpoints included")]
  for name, eps, what in rows:
    overhead = "" if name == "step only" else f"  overhead {100 * (1 - eps / step_eps):5.1f}%"
    print(f"  {name:13s} {eps:7.1f} ex/s{overhead}  ({what})")
  parts = {k[:-len('_seconds')]: v for k, v in loop.items()
           if k.endswith("_seconds") and k not in ("train_seconds",)}
  print("  parts (s): " + ", ".join(f"{k} {v:.1f}" for k, v in parts.items()))
  return 0


if __name__ == "__main__":
  sys.exit(main())
