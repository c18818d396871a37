"""The real training loop against its compiled step alone: loop overhead and idle fraction.

  python bench/loop_overhead.py RUN_DIR [--kind finetune] [--channels 8] [--samples 200]
      [--batch 32] [--dtype float32] [--steps 30]

RUN_DIR is a finished run (`tinymyo_jax.main` workdir, or one `seed_<k>` of a fine-tuning) whose
summary.json has the `loop` record of `reporting.LoopClock`. The script times the same compiled
step (`bench/jax_steps.py`: the trainer's step, optimizer and loss at the given shape, a fixed
synthetic batch, median of `--steps`) and prints, per training step of the run:
  step only     the compiled step's examples/s
  loop          examples/s over the loop's training time (eval and checkpoints left out)
  overall       examples/s over the whole loop (evaluation and checkpoints included)
  overhead      1 - loop / step only: the share of training time that is not the step
                (input pipeline, host transfers, logging; the issue's goal is <= 10%)
and the loop's seconds per part. Pass the run's own shape and dtype: the step is rebuilt from
the flags, not read from the run. Run it on a quiet machine; the figure compares two timings.
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
  loop = json.loads(summary_path.read_text()).get("loop")
  if not loop:
    p.error(f"{summary_path} has no `loop` record (a run from before the loop clock, or a re-run "
            f"of a finished one)")

  import jax

  from bench import jax_steps, timing
  from tinymyo_jax import cpu_features

  print(cpu_features.describe(jax.default_backend()))
  step, state, data, key, _ = jax_steps.build(args.kind, channels=args.channels,
                                              samples=args.samples, batch=args.batch,
                                              dtype=args.dtype)
  ms, _, _ = timing.median_step_ms(step, state, data, key, steps=args.steps)
  step_eps = 1000 * args.batch / ms
  loop_eps, overall = loop["examples_per_sec_training"], loop["examples_per_sec_overall"]
  print(f"{args.kind} {args.channels}x{args.samples} batch {args.batch} {args.dtype}")
  print(f"  step only  {step_eps:8.1f} ex/s ({ms:.1f} ms/step, median of {args.steps})")
  print(f"  loop       {loop_eps:8.1f} ex/s (training time {loop['train_seconds']:.0f} s)")
  print(f"  overall    {overall:8.1f} ex/s (whole loop {loop['seconds']:.0f} s)")
  print(f"  overhead   {100 * (1 - loop_eps / step_eps):8.1f} % of training time")
  parts = {k[:-len('_seconds')]: v for k, v in loop.items()
           if k.endswith("_seconds") and k not in ("train_seconds",)}
  print("  parts (s): " + ", ".join(f"{k} {v:.1f}" for k, v in parts.items()))
  return 0


if __name__ == "__main__":
  sys.exit(main())
