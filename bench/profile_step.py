"""Where the time of one compiled training step goes, from a `jax.profiler` trace.

  python bench/profile_step.py [--kind pretrain|finetune|probe] [--channels 8] [--samples 200]
      [--batch 32] [--dtype float32|bfloat16] [--steps 3] [--top 15] [--json OUT.json]
      [--trace_dir DIR] [--tokens_per_step N]

Traces `--steps` steps of the trainer's own step (`bench/jax_steps.py`) after a warm-up, reads
the XLA:CPU thunk events of the trace (`jax.profiler.ProfileData`) and joins each event with the
`op_name` metadata of its HLO instruction in the compiled module. The model's named scopes
(`layer_norm`, `attention`, `softmax_attention`, `mlp`, `gelu`, `patch_embed`, `head`, and
`optimizer` in the step) give the component; `jvp(` / `transpose(jvp(` in the op name say forward
or backward, and a `checkpoint`/`remat` frame inside the backward pass marks rematerialised
forward work. The op's kind comes from its HLO name: library GEMMs (`ynn_fusion`, `dot`,
`onednn`), copies and transposes, loop slicing (`dynamic-slice`, `dynamic-update-slice`: the
batch loops' stacking), other fused elementwise work. Times are summed over the XLA worker
threads, so their total exceeds the wall time by the threads' overlap; shares are of that total.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import re
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# First matching scope wins: the attention core sits inside the `attention` scope, GELU in `mlp`.
COMPONENTS = ("optimizer", "softmax_attention", "attention", "gelu", "mlp", "layer_norm",
              "patch_embed", "head")


def component_of(op_name: str) -> str:
  for scope in COMPONENTS:
    if re.search(rf"(^|[/(]){scope}([/)]|$)", op_name):
      return scope
  return "other (loss, masking, loop control)"


def pass_of(op_name: str) -> str:
  if "optimizer" in op_name:
    return "optimizer"
  if "transpose(jvp" in op_name:
    return "backward"
  return "forward"


def kind_of(hlo_name: str) -> str:
  base = re.sub(r"[.\d]+$", "", hlo_name)
  if base.startswith(("ynn_fusion", "onednn", "xnn")) or base in ("dot", "dot_general") \
      or "convolution" in base:
    return "GEMM (library / dot)"
  if "dynamic-update-slice" in base or "dynamic-slice" in base:
    return "loop slicing / stacking"
  if base.startswith(("copy", "transpose")) or base.endswith(("_copy_fusion", "transpose")):
    return "copy / transpose"
  if base in ("while", "call", "conditional"):
    return "control flow"
  return "fused elementwise / reduce"


def op_metadata(hlo_text: str) -> dict[str, str]:
  """HLO instruction name -> its op_name metadata, from the compiled module's text."""
  meta = {}
  for m in re.finditer(r"^\s*(?:ROOT )?%?([\w.\-]+) = [^\n]*?metadata=\{[^}]*?"
                       r"op_name=\"([^\"]*)\"", hlo_text, re.M):
    meta[m.group(1)] = m.group(2)
  return meta


def thunk_events(trace_dir: str):
  """(hlo op name, duration ns, thread) of every XLA thunk event in the newest trace."""
  from jax._src.profiler import ProfileData

  paths = sorted(glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True),
                 key=os.path.getmtime)
  if not paths:
    raise FileNotFoundError(f"no .xplane.pb trace under {trace_dir}")
  for plane in ProfileData.from_file(paths[-1]).planes:
    for line in plane.lines:
      for event in line.events:
        stats = dict(event.stats)
        if "hlo_op" in stats:
          yield stats["hlo_op"], event.duration_ns, line.name


def profile(args) -> dict:
  import jax

  from bench import jax_steps
  from tinymyo_jax import cpu_features
  from tinymyo_jax.models import layers

  if args.tokens_per_step:
    layers.TOKENS_PER_STEP = args.tokens_per_step  # e.g. 160: the old 2 windows of 80 tokens

  step, state, data, key, *_ = jax_steps.build(
      args.kind, channels=args.channels, samples=args.samples, batch=args.batch,
      variant=args.variant, dtype=args.dtype)
  compiled = step.lower(state, data, key).compile()
  meta = op_metadata(compiled.as_text())
  for _ in range(2):  # warm-up
    state, metrics = compiled(state, data, key)
    jax.block_until_ready(metrics)
  trace_dir = args.trace_dir or tempfile.mkdtemp(prefix="tinymyo_profile_")
  jax.profiler.start_trace(trace_dir)
  t0 = time.perf_counter()
  for _ in range(args.steps):
    state, metrics = compiled(state, data, key)
    jax.block_until_ready(metrics)
  wall = (time.perf_counter() - t0) / args.steps
  jax.profiler.stop_trace()

  by = {k: collections.Counter() for k in ("component", "pass", "kind", "op", "thread")}
  table = collections.Counter()
  for name, ns, thread in thunk_events(trace_dir):
    if kind_of(name) == "control flow":
      continue  # a loop's own event spans its body's events: counting it would count twice
    op_name = meta.get(name, "")
    ms = ns / 1e6 / args.steps
    comp, pss, knd = component_of(op_name), pass_of(op_name), kind_of(name)
    by["component"][comp] += ms
    by["pass"][pss] += ms
    by["kind"][knd] += ms
    by["op"][f"{name}  [{op_name[-60:]}]"] += ms
    by["thread"][thread] += ms
    table[(comp, knd)] += ms
  total = sum(by["kind"].values())
  return {
      "kind": args.kind, "input": f"{args.channels}x{args.samples}", "batch": args.batch,
      "dtype": args.dtype, "variant": args.variant, "wall_ms_per_step": round(1000 * wall, 1),
      "examples_per_s": round(args.batch / wall, 2), "op_ms_per_step": round(total, 1),
      "threads": len(by["thread"]),
      "breakdown": {k: {n: round(v, 1) for n, v in c.most_common()}
                    for k, c in by.items() if k not in ("op", "thread")},
      "component_x_kind": {f"{c} | {k}": round(v, 1) for (c, k), v in table.most_common()},
      "top_ops": {n: round(v, 2) for n, v in by["op"].most_common(args.top)},
      "machine": machine(), "load": os.getloadavg()[0], "trace_dir": trace_dir,
      "jax": jax.__version__, "cpu_path": cpu_features.describe(jax.default_backend()),
  }


def machine() -> str:
  from tinymyo_jax import cpu_features
  return f"{cpu_features.cpu_info()[0]}, {os.cpu_count()} cores"


def print_report(r: dict) -> None:
  print(f"{r['kind']} step {r['input']} batch {r['batch']} {r['dtype']}: "
        f"{r['wall_ms_per_step']} ms/step wall ({r['examples_per_s']} ex/s), "
        f"{r['op_ms_per_step']} ms of ops over {r['threads']} threads; {r['machine']}, "
        f"load {r['load']:.1f}\n{r['cpu_path']}")
  total = r["op_ms_per_step"] or 1.0
  for section in ("component", "pass", "kind"):
    print(f"\nby {section}:")
    for name, ms in r["breakdown"][section].items():
      print(f"  {name:40} {ms:9.1f} ms  {100 * ms / total:5.1f}%")
  print("\ntop ops:")
  for name, ms in r["top_ops"].items():
    print(f"  {ms:8.2f} ms  {name}")


def main():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--kind", default="pretrain", choices=("pretrain", "finetune", "probe"))
  p.add_argument("--channels", type=int, default=8)
  p.add_argument("--samples", type=int, default=200)
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
  p.add_argument("--variant", default="tiny")
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--top", type=int, default=15)
  p.add_argument("--trace_dir", default="", help="keep the trace here (default: a temp dir)")
  p.add_argument("--tokens_per_step", type=int, default=0,
                 help="override layers.TOKENS_PER_STEP of the CPU batch loops (0: keep it)")
  p.add_argument("--json", default="", help="also write the report to this file")
  args = p.parse_args()
  if args.samples % 20:
    p.error(f"--samples {args.samples} is not a multiple of the patch size 20")
  report = profile(args)
  print_report(report)
  if args.json:
    from tinymyo_jax import atomic_io
    atomic_io.write_text(args.json, json.dumps(report, indent=2))


if __name__ == "__main__":
  main()
