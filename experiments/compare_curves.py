"""Two runs' logged curves side by side, e.g. the same pretraining in fp32 and in bf16.

  python experiments/compare_curves.py RUN_A RUN_B [--keys eval/loss_masked,eval/loss]
      [--markdown]

Reads each run's `metrics.jsonl` (written by the trainer), joins the rows that log a key at the
same step, and prints both values and the relative gap (B - A) / A per step, then the largest
gap per key. Steps logged by only one run (e.g. one that was stopped early) are left out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def curves(run: Path, keys: list[str]) -> dict[str, dict[int, float]]:
  """key -> {step: value} from `run/metrics.jsonl`."""
  path = run / "metrics.jsonl"
  if not path.is_file():
    raise FileNotFoundError(f"{path} does not exist (is {run} a training run's workdir?)")
  out = {k: {} for k in keys}
  with open(path) as f:
    for line_no, line in enumerate(f, 1):
      try:
        row = json.loads(line)
      except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{line_no} is not JSON: {e}") from e
      for k in keys:
        if k in row:
          out[k][int(row["step"])] = float(row[k])
  return out


def compare(a: Path, b: Path, keys: list[str]) -> dict[str, list[tuple[int, float, float]]]:
  """key -> [(step, value in A, value in B)] over the steps both runs logged."""
  ca, cb = curves(a, keys), curves(b, keys)
  return {k: [(s, ca[k][s], cb[k][s]) for s in sorted(ca[k].keys() & cb[k].keys())]
          for k in keys}


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("run_a", type=Path)
  p.add_argument("run_b", type=Path)
  p.add_argument("--keys", default="eval/loss_masked,eval/loss")
  p.add_argument("--markdown", action="store_true", help="print a Markdown table")
  args = p.parse_args(argv)
  keys = [k for k in args.keys.split(",") if k]
  try:
    table = compare(args.run_a, args.run_b, keys)
  except (FileNotFoundError, ValueError) as e:
    p.error(str(e))
  for key, rows in table.items():
    if not rows:
      print(f"{key}: no step logged by both runs")
      continue
    print(f"\n{key}: A = {args.run_a}, B = {args.run_b}")
    if args.markdown:
      print("| step | A | B | (B - A) / A |\n|---:|---:|---:|---:|")
    for step, va, vb in rows:
      gap = (vb - va) / va if va else float("nan")
      print(f"| {step} | {va:.4f} | {vb:.4f} | {gap:+.2%} |" if args.markdown
            else f"  step {step:6d}  {va:.5f}  {vb:.5f}  {gap:+.2%}")
    worst = max(rows, key=lambda r: abs((r[2] - r[1]) / r[1]) if r[1] else 0.0)
    print(f"largest gap at step {worst[0]}: {(worst[2] - worst[1]) / worst[1]:+.2%}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
