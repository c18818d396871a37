"""The grouped cross-validation table of RESULTS.md from finished runs.

Reads `<runs>/<row>_fold<k>/summary.json` (network runs: `experiments/cross_corpus.sh cv` for the
cross-corpus and scratch rows, `experiments/uci_results.sh cv` for the UCI-only row; `--runs` takes
several folders, the first that holds a run is used) and
`<baselines>/uci_200hz_fold<k>.json` (`experiments/classical_baselines.py`), and prints two
markdown tables: test accuracy per fold with the mean +/- std over folds (each fold's test
subjects once; sample std), and every subject's accuracy with the number of subjects where each
network row beats the random forest, and each network row paired per subject with scratch and
with the random forest (mean difference, wins, Wilcoxon signed-rank p). A missing run is shown
as "-" and left out of the means; a row with no finished run is left out. `--choose lp lpft` adds
the row a user would get by choosing on validation: in each fold, the candidate whose runs
reached the lower best validation loss (test never looked at).

  python experiments/cv_table.py --runs runs/cross_corpus/cv --baselines runs/cross_corpus/baselines
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import stats

NETWORK_ROWS = {"ft": "cross-corpus pretrained, full fine-tuning",
                "lp": "cross-corpus pretrained, linear probe",
                "lp_long": "cross-corpus pretrained, linear probe, longer",
                "lpft": "cross-corpus pretrained, LP-FT (full fine-tuning from the probe)",
                "lpft_aug": "cross-corpus pretrained, LP-FT, time-shift augmentation",
                "lr": "cross-corpus pretrained, logistic-regression probe (L2 chosen on val.)",
                "lpft_lr": "cross-corpus pretrained, LP-FT from the logistic-regression probe",
                "uci_ft": "UCI-only pretrained (the fold's training subjects), full fine-tuning",
                "scratch": "scratch (same budget)",
                "ft_aug": "cross-corpus pretrained, full fine-tuning, augmented",
                "scratch_aug": "scratch (same budget), augmented"}
CHOSEN_ROW = {"chosen": "chosen per fold on validation loss (--choose)"}
BASELINE_ROWS = {"lda": "LDA (time-domain features)",
                 "random_forest": "random forest (time-domain features)"}
ROW_NAMES = {**NETWORK_ROWS, **CHOSEN_ROW, **BASELINE_ROWS}


def network_scores(path: Path) -> tuple[float, dict[str, float]] | None:
  """(test accuracy, {subject: accuracy}) of a fine-tuning summary.json (seed mean), or None."""
  if not path.exists():
    return None
  test = json.loads(path.read_text())["test"]
  by_subject = {s: v["mean"] if isinstance(v, dict) else v
                for s, v in test["accuracy_by_subject"].items()}
  acc = test["accuracy"]
  return (acc["mean"] if isinstance(acc, dict) else acc), by_subject


def validation_loss(path: Path) -> float | None:
  """Mean over seeds of each run's best validation loss in a summary.json, or None (also for
  a logistic-regression probe, which has no loss comparable to the network runs')."""
  if not path.exists():
    return None
  runs = json.loads(path.read_text()).get("runs")
  return float(np.mean([r["best_eval_loss"] for r in runs])) if runs else None


def baseline_scores(path: Path, model: str) -> tuple[float, dict[str, float]] | None:
  """(test accuracy, {subject: accuracy}) of one model in a classical_baselines.py output."""
  if not path.exists():
    return None
  test = json.loads(path.read_text())["models"][model]["test"]
  return test["accuracy"], dict(test["accuracy_by_subject"])


def fold_columns(folds: int) -> list[tuple[str, str]]:
  """(run folder suffix, baseline file stem) of each cross-validation fold."""
  return [(f"fold{k}", f"uci_200hz_fold{k}") for k in range(folds)]


def first_run(runs: Sequence[Path], name: str) -> Path:
  """`<folder>/<name>/summary.json` of the first folder that holds it (else of the first)."""
  paths = [folder / name / "summary.json" for folder in runs]
  return next((p for p in paths if p.exists()), paths[0])


def choose_on_validation(runs: Sequence[Path], candidates: Sequence[str],
                         columns: list[tuple[str, str]]) -> list[str | None]:
  """Per column, the candidate row with the lowest validation loss (None unless all finished)."""
  chosen = []
  for suffix, _ in columns:
    losses = [validation_loss(first_run(runs, f"{row}_{suffix}")) for row in candidates]
    chosen.append(None if None in losses else candidates[int(np.argmin(losses))])
  return chosen


def collect(runs: Sequence[Path], baselines: Path, columns: list[tuple[str, str]],
            chosen: Sequence[str | None] = ()) -> dict[str, list]:
  """{row: [scores of each column or None]} for every baseline row and every network row with
  at least one finished run; `chosen` (a row per column) makes the "chosen" row."""
  rows = {row: [network_scores(first_run(runs, f"{row}_{suffix}")) for suffix, _ in columns]
          for row in NETWORK_ROWS}
  if chosen:
    rows["chosen"] = [pick and rows[pick][k] for k, pick in enumerate(chosen)]
  rows = {row: scores for row, scores in rows.items() if any(scores)}
  for model in BASELINE_ROWS:
    rows[model] = [baseline_scores(baselines / f"{stem}.json", model) for _, stem in columns]
  return rows


def pct(x: float | None) -> str:
  return "-" if x is None else f"{100 * x:.2f}"


def fold_table(rows: dict[str, list], labels: list[str]) -> list[str]:
  folds = len(labels)
  lines = ["| row | " + " | ".join(labels) + " | mean +/- std |", "|---" * (folds + 2) + "|"]
  for row, scores in rows.items():
    accs = [s[0] for s in scores if s is not None]
    # sample std over folds; none for a single value
    spread = f" +/- {100 * np.std(accs, ddof=1):.2f}" if len(accs) > 1 else ""
    mean = (f"{100 * np.mean(accs):.2f}{spread}"
            + ("" if len(accs) == folds else f" ({len(accs)} folds)")) if accs else "-"
    lines.append(f"| {ROW_NAMES[row]} | " + " | ".join(pct(s and s[0]) for s in scores)
                 + f" | {mean} |")
  return lines


def subject_scores(rows: dict[str, list]) -> dict[str, dict[str, float]]:
  """{row: {subject: accuracy}} over every finished column of each row."""
  return {row: {s: a for scores in rows[row] if scores for s, a in scores[1].items()}
          for row in rows}


def subject_table(rows: dict[str, list]) -> list[str]:
  by_row = subject_scores(rows)
  subjects = sorted({s for accs in by_row.values() for s in accs}, key=int)
  lines = ["| subject | " + " | ".join(rows) + " |", "|---" * (len(rows) + 1) + "|"]
  for s in subjects:
    lines.append(f"| {s} | " + " | ".join(pct(by_row[r].get(s)) for r in rows) + " |")
  rf = by_row["random_forest"]
  for row in by_row.keys() - BASELINE_ROWS.keys():
    shared = [s for s in by_row[row] if s in rf]
    if shared:
      wins = sum(by_row[row][s] > rf[s] for s in shared)
      lines.append(f"\n{row}: above the random forest on {wins} of {len(shared)} subjects")
  return lines


def paired_table(rows: dict[str, list], references: Sequence[str] = ("scratch", "random_forest")
                 ) -> list[str]:
  """Each network row against each reference row over the subjects both scored: mean paired
  difference in points, wins / losses, and the two-sided Wilcoxon signed-rank p-value."""
  by_row = subject_scores(rows)
  lines = ["| row | against | subjects | mean difference (points) | wins / losses | Wilcoxon p |",
           "|---|---|---:|---:|---:|---:|"]
  for row in by_row:
    for ref in references:
      if row == ref or row in BASELINE_ROWS or ref not in by_row:
        continue
      shared = sorted(by_row[row].keys() & by_row[ref].keys(), key=int)
      if not shared:
        continue
      diff = np.array([by_row[row][s] - by_row[ref][s] for s in shared])
      p = stats.wilcoxon(diff).pvalue if np.any(diff != 0) else 1.0
      lines.append(f"| {row} | {ref} | {len(shared)} | {100 * diff.mean():+.2f} | "
                   f"{int(np.sum(diff > 0))} / {int(np.sum(diff < 0))} | {p:.3f} |")
  return lines


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--runs", type=Path, nargs="+", required=True,
                      help="folders of <row>_fold<k> runs")
  parser.add_argument("--baselines", type=Path, required=True,
                      help="folder of uci_200hz_fold<k>.json baseline files")
  parser.add_argument("--folds", type=int, default=5)
  parser.add_argument("--task", default="",
                      help="one task instead of folds: <runs>/<row>_TASK, <baselines>/TASK.json")
  parser.add_argument("--choose", nargs="+", default=[], metavar="ROW",
                      help="network rows to choose between per fold on validation loss")
  args = parser.parse_args(argv)
  for folder in (*args.runs, args.baselines):
    if not folder.is_dir():
      parser.error(f"no such folder: {folder}")
  if len(args.choose) == 1 or not set(args.choose) <= NETWORK_ROWS.keys():
    parser.error(f"--choose needs two or more of {sorted(NETWORK_ROWS)}, got {args.choose}")
  columns = [(args.task, args.task)] if args.task else fold_columns(args.folds)
  labels = [args.task] if args.task else [f"fold {k}" for k in range(args.folds)]
  chosen = choose_on_validation(args.runs, args.choose, columns) if args.choose else []
  rows = collect(args.runs, args.baselines, columns, chosen)
  notes = (["chosen on validation loss: " + ", ".join(
      f"{label} {pick or '- (a candidate has no validation loss)'}"
      for label, pick in zip(labels, chosen)),
      ""] if chosen else [])
  print("\n".join(fold_table(rows, labels) + [""] + notes + subject_table(rows) + [""]
                  + paired_table(rows)))
  return 0


if __name__ == "__main__":
  sys.exit(main())
