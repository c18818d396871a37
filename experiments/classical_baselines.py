"""Classical EMG baselines on exactly the windows and splits of a fine-tuning task.

Each window (raw builder output, Myo integer units) becomes the standard time-domain features per
channel: mean absolute value, RMS, waveform length, zero crossings, slope sign changes and log-RMS
(6 x C numbers). A linear discriminant (LDA) and a random forest (300 trees, scikit-learn's
defaults otherwise) are fit on the task's training split and scored on its validation and test
splits, overall and per subject; nothing is chosen on test. The task's split expressions come
from `configs/finetune.py`, so a named split (`uci_200hz,fold2`) selects the same windows as the
network's run.

Usage (scikit-learn is the optional extra `sklearn`):
  python experiments/classical_baselines.py --task uci_200hz --data_dir data/tfds_uci_full \
      --out runs/baselines/uci_200hz.json [--rotate_subject 22] [--overwrite]
An existing --out is printed, not recomputed, unless --overwrite is given.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import finetune  # noqa: E402
from tinymyo_jax import extras, input_pipeline, metrics, reporting  # noqa: E402

FEATURES = ("mav", "rms", "wl", "zc", "ssc", "log_rms")
ROLES = ("train", "validation", "test")


def td_features(windows: np.ndarray) -> np.ndarray:
  """[N, C, T] windows -> [N, 6 * C] features, grouped by feature in the order of FEATURES."""
  x = np.asarray(windows, np.float64)
  diff = np.diff(x, axis=-1)
  rms = np.sqrt((x ** 2).mean(-1))
  feats = [np.abs(x).mean(-1), rms, np.abs(diff).sum(-1),
           (x[..., :-1] * x[..., 1:] < 0).sum(-1),
           (diff[..., :-1] * diff[..., 1:] < 0).sum(-1), np.log(rms + 1e-6)]
  return np.concatenate(feats, axis=-1)


def split_features(records, chunk: int = 4096, rotate: int = 0
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(features [N, F], labels [N], subjects [N]) of random-access records, computed in chunks.

  `rotate` circularly shifts the channels of every window first (an armband worn rotated).
  """
  feats, labels, subjects = [], [], []
  for start in range(0, len(records), chunk):
    rows = [records[i] for i in range(start, min(start + chunk, len(records)))]
    emg = np.stack([np.asarray(r["emg"]) for r in rows])
    feats.append(td_features(np.roll(emg, rotate, axis=1) if rotate else emg))
    labels.extend(int(r["label"]) for r in rows)
    subjects.extend(int(r["subject"]) for r in rows)
  if not feats:
    raise ValueError("no windows to compute features of")
  return np.concatenate(feats), np.asarray(labels), np.asarray(subjects)


def task_records(task: str, data_dir: str) -> dict[str, object]:
  """{role: random-access records} of the task's train / validation / test split expressions."""
  config = finetune.get_config(task)
  if config.task != "classification":
    raise ValueError(f"task {task!r} is a {config.task} task; the baselines classify")
  source = input_pipeline.Source(*config.data.sources[0])
  splits = (config.data.train_split, config.data.eval_split, config.data.test_split)
  out = {}
  for role, split in zip(ROLES, splits):
    out[role] = input_pipeline.load_source(source, split, data_dir)
    if len(out[role]) == 0:
      raise ValueError(f"task {task!r}: split {split!r} of {source.name} has no windows")
  return out


def make_models(seed: int) -> dict[str, object]:
  from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
  from sklearn.ensemble import RandomForestClassifier
  from sklearn.pipeline import make_pipeline
  from sklearn.preprocessing import StandardScaler
  return {"lda": make_pipeline(StandardScaler(), LinearDiscriminantAnalysis()),
          "random_forest": RandomForestClassifier(n_estimators=300, random_state=seed,
                                                  n_jobs=-1)}


def scores(y: np.ndarray, pred: np.ndarray, subjects: np.ndarray, num_classes: int) -> dict:
  from sklearn.metrics import f1_score
  return {"accuracy": float((pred == y).mean()),
          "macro_f1": float(f1_score(y, pred, labels=list(range(num_classes)), average="macro",
                                     zero_division=0)),
          "accuracy_by_subject": metrics.accuracy_by_group(y, pred, subjects),
          "num_windows": int(y.size)}


def run(task: str, data_dir: str, seed: int = 0, rotate_subject: int | None = None) -> dict:
  """Fits both baselines on the task's training windows; returns their scores per split."""
  config = finetune.get_config(task)
  num_classes = int(config.model.num_outputs)
  records = task_records(task, data_dir)
  t0 = time.time()
  data = {role: split_features(recs) for role, recs in records.items()}
  out = {"task": task, "data_dir": os.path.abspath(data_dir), "features": list(FEATURES),
         "feature_seconds": time.time() - t0,
         "num_train_windows": int(data["train"][1].size), "models": {}}
  for name, model in make_models(seed).items():
    t0 = time.time()
    model.fit(data["train"][0], data["train"][1])
    result = {"fit_seconds": time.time() - t0}
    for role in ("validation", "test"):
      feats, y, subjects = data[role]
      result[role] = scores(y, model.predict(feats), subjects, num_classes)
    if rotate_subject is not None:
      result["test_rotations"] = rotation_accuracies(model, records["test"], rotate_subject)
    out["models"][name] = result
  return out


def rotation_accuracies(model, records, subject: int) -> list[float]:
  """Accuracy on one subject's test windows under each circular channel shift 0..C-1."""
  subjects = np.asarray([int(records[i]["subject"]) for i in range(len(records))])
  mine = input_pipeline.RecordView([records], {"subject": frozenset({subject})})
  if not len(mine):
    raise ValueError(f"subject {subject} has no test windows (test subjects: "
                     f"{sorted(set(subjects.tolist()))})")
  channels = np.shape(mine[0]["emg"])[0]
  accs = []
  for k in range(channels):
    feats, y, _ = split_features(mine, rotate=k)
    accs.append(float((model.predict(feats) == y).mean()))
  return accs


def markdown_rows(result: dict) -> list[str]:
  """One table row per model: test accuracy, macro-F1, per-subject accuracy, validation, time."""
  rows = []
  for name, r in result["models"].items():
    accuracy = sorted(r["test"]["accuracy_by_subject"].items(), key=lambda kv: int(kv[0]))
    by_subject = ", ".join(f"{s}: {100 * v:.1f}" for s, v in accuracy)
    rows.append(f"| {name} | {100 * r['test']['accuracy']:.2f}% | "
                f"{100 * r['test']['macro_f1']:.2f}% | {by_subject} | "
                f"{100 * r['validation']['accuracy']:.2f}% | "
                f"{r['fit_seconds'] + result['feature_seconds']:.0f} s |")
  return rows


def main(argv: Sequence[str] | None = None) -> int:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--task", required=True, help="a classification task of configs/finetune.py, "
                 "optionally with a named split (uci_200hz,fold0)")
  p.add_argument("--data_dir", required=True, help="root of the built datasets")
  p.add_argument("--out", required=True, help="JSON file for the scores")
  p.add_argument("--seed", type=int, default=0, help="random forest seed")
  p.add_argument("--rotate_subject", type=int, default=None,
                 help="also score this test subject under each circular channel shift")
  p.add_argument("--overwrite", action="store_true", help="recompute an existing --out")
  args = p.parse_args(argv)
  if os.path.exists(args.out) and not args.overwrite:
    print(f"{args.out} exists (pass --overwrite to recompute):")
    with open(args.out, encoding="utf-8") as f:
      result = json.load(f)
  else:
    result = run(args.task, args.data_dir, args.seed, args.rotate_subject)
    reporting.write_json_atomic(args.out, result)
  print("| model | test accuracy | test macro-F1 | test accuracy by subject | validation "
        "accuracy | wall |")
  print("\n".join(markdown_rows(result)))
  return 0


if __name__ == "__main__":
  sys.exit(extras.run_cli(main))
