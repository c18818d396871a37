"""Times a compiled training step and reports examples/s, ms/step and model FLOPs/example.

The step is the trainer's own (`bench/jax_steps.py`: pretrain, finetune or probe). FLOPs:
analytic (`bench/flops.py`, 3x forward for a training step, 1x for a probe step). XLA's
cost_analysis is printed too, but it counts the body of the CPU batch loop (`lax.scan`) only
once, so it undercounts whenever that loop is active.

Usage: python bench/train_step.py [--kind pretrain --channels 16 --samples 1000 --batch 32
                                   --steps 5 --variant tiny --dtype float32]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

from bench import jax_steps  # noqa: E402
from bench.flops import model_flops_per_example  # noqa: E402
from bench.timing import median_step_ms  # noqa: E402
from tinymyo_jax import cpu_features, steps, tasks  # noqa: E402


def flops_of(compiled) -> float | None:
  analysis = compiled.cost_analysis()
  if isinstance(analysis, list):
    analysis = analysis[0] if analysis else None
  return float(analysis["flops"]) if analysis and "flops" in analysis else None


def main():
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("--kind", default="pretrain", choices=jax_steps.KINDS)
  p.add_argument("--channels", type=int, default=16)
  p.add_argument("--samples", type=int, default=1000)
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--steps", type=int, default=5)
  p.add_argument("--variant", default="tiny")
  p.add_argument("--dtype", default="float32")
  p.add_argument("--rope_mode", default="time")
  args = p.parse_args()

  shape = dict(variant=args.variant, dtype=args.dtype, rope_mode=args.rope_mode)
  step, state, batch, key, graphdef, config = jax_steps.build(
      args.kind, channels=args.channels, samples=args.samples, batch=args.batch, **shape)
  eval_fn = steps.make_eval_step(graphdef, tasks.get(config.task).loss_fn(config))

  t0 = time.perf_counter()
  compiled = step.lower(state, batch, key).compile()
  compile_s = time.perf_counter() - t0
  step_flops = flops_of(compiled)
  hlo = compiled.as_text().lower()  # which library paths XLA took (bench/xla_flags.py)
  library_calls = {lib: hlo.count(lib) for lib in ("ynn", "xnn", "onednn")}
  fwd_flops = flops_of(jax.jit(eval_fn).lower(state["params"], batch, key).compile())

  ms, state, m = median_step_ms(compiled, state, batch, key, steps=args.steps)
  # a probe step has no backward pass through the encoder: one forward (the head is negligible)
  train_flops = model_flops_per_example(args.variant, args.channels, args.samples,
                                        train=args.kind != "probe")
  eval_flops = model_flops_per_example(args.variant, args.channels, args.samples, train=False)
  result = {
      "kind": args.kind, "input": f"{args.channels}x{args.samples}", "batch": args.batch,
      "variant": args.variant, "dtype": args.dtype, "rope_mode": args.rope_mode,
      "compile_s": round(compile_s, 1), "hlo_library_mentions": library_calls,
      "ms_per_step_median": round(ms, 1), "examples_per_s": round(args.batch * 1000 / ms, 2),
      "train_gflop_per_example": round(train_flops / 1e9, 2),
      "forward_gflop_per_example": round(eval_flops / 1e9, 2),
      "achieved_gflop_per_s": round(train_flops * args.batch / (ms / 1000) / 1e9, 1),
      "xla_cost_analysis_gflop_per_example": {
          "train_step": step_flops and round(step_flops / args.batch / 1e9, 2),
          "forward": fwd_flops and round(fwd_flops / args.batch / 1e9, 2)},
      "loss": float(m["loss"]), "jax": jax.__version__, "devices": str(jax.devices()),
      "cpu_count": os.cpu_count(), "machine": cpu_features.cpu_info()[0],
      "cpu_path": cpu_features.describe(jax.default_backend()),
  }
  print(json.dumps(result, indent=2))


if __name__ == "__main__":
  main()
