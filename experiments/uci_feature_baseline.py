"""Classical control for the UCI-EMG subject-independent split: LDA on log-RMS features.

Each 8 x 200 window becomes 8 numbers, the log of each channel's RMS; a linear discriminant
(class means, pooled covariance) is fit on the training subjects and scored on the validation
and test subjects, overall and per subject. It puts the Transformer figures of RESULTS.md in
context: how much of the task is the per-channel amplitude pattern, and which test subjects no
amplitude model can classify.

Usage: python experiments/uci_feature_baseline.py [--data_dir data/tfds_uci_full]
                                                 [--rotate_subject 22]
       (after `bash experiments/uci_results.sh build`); --rotate_subject also scores that test
       subject's windows under each of the 8 circular channel shifts (an armband worn rotated).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data_builders import registry  # noqa: E402
from tinymyo_jax import metrics  # noqa: E402


def load_split(split: str, data_dir: str, config: str):
  """(windows [N, C, T], labels [N], subjects [N]) of a built uci_emg split."""
  records = registry.load_split("uci_emg", split, data_dir=data_dir, config=config)
  rows = [records[i] for i in range(len(records))]
  return (np.stack([np.asarray(r["emg"], np.float64) for r in rows]),
          np.array([int(r["label"]) for r in rows]), np.array([int(r["subject"]) for r in rows]))


def log_rms(windows: np.ndarray) -> np.ndarray:
  """[N, C, T] -> [N, C]: log of each channel's root mean square."""
  return np.log(np.sqrt((windows ** 2).mean(-1)) + 1e-6)


def fit_lda(features: np.ndarray, labels: np.ndarray, ridge: float = 1e-3):
  """Class means and the inverse of the (ridge-regularised) pooled within-class covariance."""
  classes = np.unique(labels)
  means = np.stack([features[labels == c].mean(0) for c in classes])
  residuals = features - means[np.searchsorted(classes, labels)]
  cov = np.cov(residuals.T) + ridge * np.eye(features.shape[1])
  return classes, means, np.linalg.inv(cov)


def predict_lda(model, features: np.ndarray) -> np.ndarray:
  """The class with the smallest Mahalanobis distance to its mean."""
  classes, means, precision = model
  dist = np.stack([np.einsum("nc,cd,nd->n", features - m, precision, features - m)
                   for m in means], axis=1)
  return classes[dist.argmin(1)]


def main():
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("--data_dir", default="data/tfds_uci_full")
  p.add_argument("--config", default="hz200")
  p.add_argument("--rotate_subject", type=int, default=None)
  args = p.parse_args()
  x, y, _ = load_split("train", args.data_dir, args.config)
  model = fit_lda(log_rms(x), y)
  out = {}
  for split in ("validation", "test"):
    x, y, subjects = load_split(split, args.data_dir, args.config)
    pred = predict_lda(model, log_rms(x))
    out[split] = {"accuracy": float((pred == y).mean()),
                  "accuracy_by_subject": metrics.accuracy_by_group(y, pred, subjects)}
    if split == "test" and args.rotate_subject is not None:
      mine = subjects == args.rotate_subject
      out["test"]["rotations"] = [
          float((predict_lda(model, log_rms(np.roll(x[mine], k, axis=1))) == y[mine]).mean())
          for k in range(x.shape[1])]
  print(json.dumps(out, indent=1))


if __name__ == "__main__":
  main()
