"""XLA CPU flag settings against the default, on the trainer's own steps, A/B in one run.

  python bench/xla_flags.py [--kinds finetune,pretrain] [--channels 8] [--samples 200]
      [--batch 32] [--steps 10] [--rounds 2] [--settings default,xnn_dot,...]

Every setting runs `bench/train_step.py` in a fresh process with its `XLA_FLAGS` (flags are
read once per process); the settings alternate round by round (A/B/A/B), and the script prints
each setting's median examples/s per step kind, its ratio to the default of the same run and the
loss of the timed step (a setting that changes the numbers shows it there); each round's line
counts the YNNPACK / XNNPACK / oneDNN mentions in the compiled step, i.e. whether the setting
took effect. A setting this jaxlib does not know fails its process and is reported as failed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Candidate settings: the CPU library paths for dots and fusions that this jaxlib carries. By
# default (jaxlib 0.10.2) XLA hands dots and the element-wise/reduce work around them to YNNPACK
# (`__ynn_fusion` in the compiled HLO); the others switch YNNPACK off or narrow it, or move dots to
# XNNPACK or oneDNN.
YNN_OFF = "--xla_cpu_experimental_ynn_fusion_type="
SETTINGS = {
    "default": "",
    "ynn_off": YNN_OFF,
    "ynn_dot_only": "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_DOT",
    "xnn_dot": YNN_OFF + " --xla_cpu_experimental_xnn_fusion_type="
               "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT",
    "onednn_dot": YNN_OFF + " --xla_cpu_experimental_onednn_fusion_type=LIBRARY_FUSION_TYPE_DOT",
    "use_onednn": YNN_OFF + " --xla_cpu_use_onednn=true",
}


def time_setting(flags: str, kind: str, args) -> dict | None:
  """train_step.py's JSON for one step kind under `flags`, or None when the process failed."""
  env = dict(os.environ, XLA_FLAGS=" ".join(filter(None, [os.environ.get("XLA_FLAGS", ""),
                                                           flags])))
  cmd = [sys.executable, os.path.join(REPO, "bench", "train_step.py"), "--kind", kind,
         "--channels", str(args.channels), "--samples", str(args.samples),
         "--batch", str(args.batch), "--steps", str(args.steps), "--dtype", args.dtype]
  proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
  if proc.returncode != 0:
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
    print(f"  {kind} {flags or 'default'}: failed ({tail[0][:160]})", flush=True)
    return None
  return json.loads(proc.stdout[proc.stdout.index("{"):])


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--kinds", default="finetune,pretrain")
  p.add_argument("--settings", default=",".join(SETTINGS))
  p.add_argument("--channels", type=int, default=8)
  p.add_argument("--samples", type=int, default=200)
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--steps", type=int, default=10)
  p.add_argument("--rounds", type=int, default=2)
  p.add_argument("--dtype", default="float32")
  args = p.parse_args(argv)
  names = args.settings.split(",")
  unknown = sorted(set(names) - set(SETTINGS))
  if unknown:
    p.error(f"unknown settings {unknown}; known: {sorted(SETTINGS)}")
  if "default" not in names:
    names.insert(0, "default")
  kinds = args.kinds.split(",")
  eps: dict[tuple[str, str], list[float]] = {}
  losses: dict[tuple[str, str], float] = {}
  machine = ""
  for r in range(args.rounds):
    for kind in kinds:
      for name in names:
        result = time_setting(SETTINGS[name], kind, args)
        if result is None:
          continue
        machine = result["cpu_path"]
        eps.setdefault((kind, name), []).append(result["examples_per_s"])
        losses[(kind, name)] = result["loss"]
        print(f"round {r} {kind:8s} {name:18s} {result['examples_per_s']:8.2f} ex/s "
              f"(load {os.getloadavg()[0]:.1f}; library mentions in the compiled HLO "
              f"{result['hlo_library_mentions']})", flush=True)
  print(f"\n{machine}\n{args.channels}x{args.samples}, batch {args.batch}, {args.dtype}, "
        f"median of {args.rounds} rounds x {args.steps} steps")
  print("| step | setting | ex/s | vs default | loss |\n|---|---|---:|---:|---:|")
  for kind in kinds:
    base = eps.get((kind, "default"))
    for name in names:
      if (kind, name) not in eps:
        print(f"| {kind} | {name} | failed | | |")
        continue
      med = statistics.median(eps[(kind, name)])
      ratio = f"{med / statistics.median(base):.2f}x" if base else "-"
      print(f"| {kind} | {name} | {med:.2f} | {ratio} | {losses[(kind, name)]:.5f} |")
  return 0


if __name__ == "__main__":
  sys.exit(main())
