"""Real UCI-EMG windows for calibration and evaluation of the deployed classifier.

The preferred source is the project's TFDS builder (`data_builders.registry.load_split`). While it
is absent, or when no prepared data dir is given, the windows are cut straight from a UCI zip
(the 10-subject sample bundled in `data_builders/uci_emg/sample/` unless `zip_path` names the
full copy) with the TinyMyo preprocessing (drop class 0, 20-90 Hz band-pass and 50 Hz notch at
the script's assumed fs = 200 Hz, per-file z-score, windows inside constant-class runs, label =
class - 1). Windows are then normalised as the checkpoint was trained (`InputSpec`): with the
normalisation and training-split channel statistics stored in its meta when it has them, else
z-scored per window and channel (the older fine-tuning input normalisation).
"""

from __future__ import annotations

import dataclasses
import io
import re
import zipfile
from pathlib import Path

import numpy as np
from scipy import signal

# Subjects 01, 03-07, 17, 18 (train) and 20, 21 (test) of the distribution zip, byte for byte.
UCI_ZIP = (Path(__file__).resolve().parents[2] / "data_builders" / "uci_emg" / "sample"
           / "EMG_data_for_gestures.zip")
SPLIT_SUBJECTS = {"train": range(1, 20), "test": range(20, 23)}
FS_ASSUMED = 200.0  # the TinyMyo script's sampling-rate assumption (see datasets.md, UCI)


def zscore_windows(x_nct: np.ndarray, eps: float = 1e-6) -> np.ndarray:
  """Per-window, per-channel z-score over time."""
  x = np.asarray(x_nct, np.float32)
  mean = x.mean(axis=-1, keepdims=True)
  std = x.std(axis=-1, keepdims=True)
  return ((x - mean) / np.maximum(std, eps)).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class InputSpec:
  """The input transform and data a classifier was trained with.

  Attributes:
    normalization: None (per-window z-score, checkpoints without input meta) or a
      `tinymyo_jax.input_pipeline.NORMALIZATIONS` name.
    stats: {"mean": [C], "std": [C]} of the training split ("standardize" only).
    num_channels: channels the model fuses (windows are zero-padded up to it).
    builder_config: config of the `uci_emg` builder the checkpoint was trained on.
    dataset: the corpus it was trained on (meta["data"]["dataset"]); only `uci_emg` has windows
      here.
  """

  normalization: str | None = None
  stats: dict | None = None
  num_channels: int | None = None
  builder_config: str | None = None
  dataset: str = "uci_emg"

  @classmethod
  def from_meta(cls, meta: dict, num_channels: int | None = None) -> InputSpec:
    """Spec from a checkpoint's meta; the default spec when it records no normalisation."""
    norm = meta.get("normalization")
    if not norm:
      return cls()
    stats = (meta.get("input_stats") or [None])[0]
    data = meta.get("data") or {}
    return cls(norm, stats, num_channels, data.get("dataset_config"),
               data.get("dataset") or "uci_emg")

  def apply(self, x_nct: np.ndarray) -> np.ndarray:
    """Model-ready float32 windows [N, C, T]."""
    if self.normalization is None:
      return zscore_windows(x_nct)
    from tinymyo_jax.input_pipeline import PrepareWindow  # heavy (grain, jax)
    prep = PrepareWindow(self.normalization, self.num_channels, (), self.stats)
    out = [prep.map({"emg": w})["emg"] for w in np.asarray(x_nct, np.float32)]
    return np.stack(out).astype(np.float32) if out else np.asarray(x_nct, np.float32)


def _preprocess_file(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Rows [time, ch1..ch8, class] -> filtered, z-scored signal [T, 8] and labels [T]."""
  rows = rows[rows[:, 9] != 0]
  emg, cls = rows[:, 1:9], rows[:, 9].astype(np.int64)
  b, a = signal.butter(4, [20.0, 90.0], btype="bandpass", fs=FS_ASSUMED)
  emg = signal.filtfilt(b, a, emg, axis=0)
  bn, an = signal.iirnotch(50.0, 30.0, fs=FS_ASSUMED)
  emg = signal.filtfilt(bn, an, emg, axis=0)
  std = emg.std(axis=0, ddof=1)
  emg = (emg - emg.mean(axis=0)) / np.where(std == 0, 1.0, std)
  return emg.astype(np.float32), cls


def _cut(emg: np.ndarray, cls: np.ndarray, length: int, stride: int):
  """Windows [length, 8] fully inside runs of one class."""
  edges = np.flatnonzero(np.diff(cls)) + 1
  starts, ends = np.r_[0, edges], np.r_[edges, len(cls)]
  for s, e in zip(starts, ends):
    for w in range(s, e - length + 1, stride):
      yield emg[w:w + length].T, int(cls[s]) - 1


def windows_from_zip(split: str, *, zip_path: Path = UCI_ZIP, length: int = 1000,
                     stride: int = 500, subjects=None) -> tuple[np.ndarray, np.ndarray]:
  """Windows [N, 8, length] (not yet window-normalised) and labels [N] of one split."""
  if split not in SPLIT_SUBJECTS and subjects is None:
    raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLIT_SUBJECTS)}")
  wanted = set(SPLIT_SUBJECTS[split] if subjects is None else subjects)
  xs, ys = [], []
  with zipfile.ZipFile(zip_path) as zf:
    for name in sorted(zf.namelist()):
      m = re.search(r"/(\d\d)/\d_raw_data.*\.txt$", name)
      if not m or int(m.group(1)) not in wanted:
        continue
      rows = np.loadtxt(io.BytesIO(zf.read(name)), skiprows=1, dtype=np.float64)
      for x, y in _cut(*_preprocess_file(rows), length, stride):
        xs.append(x)
        ys.append(y)
  if not xs:
    raise ValueError(f"no windows of length {length} for subjects {sorted(wanted)} in {zip_path}")
  return np.stack(xs).astype(np.float32), np.asarray(ys, np.int64)


def windows_from_builder(split: str, data_dir: str,
                         config: str | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Windows and labels from the prepared `uci_emg` TFDS builder (array_record, no TF)."""
  from data_builders import registry  # heavy import, only on this path
  source = registry.load_split("uci_emg", split, data_dir=data_dir, config=config)
  xs = np.stack([np.asarray(r["emg"], np.float32) for r in source])
  ys = np.asarray([int(r["label"]) for r in source], np.int64)
  return xs, ys


def load_windows(split: str, *, data_dir: str | None = None, limit: int | None = None,
                 seed: int = 0, spec: InputSpec = InputSpec(),
                 **zip_kwargs) -> tuple[np.ndarray, np.ndarray]:
  """Model-ready windows: builder split if `data_dir` is given, else a UCI zip (`zip_path`).

  `limit` keeps a seeded random subset of that size (class balance is not enforced); `spec`
  gives the normalisation (and builder config) of the checkpoint.
  """
  if spec.dataset != "uci_emg":
    raise ValueError(f"the checkpoint was trained on {spec.dataset!r}; these tools cut UCI-EMG "
                     f"(uci_emg) windows only")
  if data_dir is not None:
    x, y = windows_from_builder(split, data_dir, spec.builder_config)
  elif spec.stats is not None:
    raise ValueError(f"the checkpoint normalises with training-split statistics of builder "
                     f"'uci_emg' (config {spec.builder_config!r}); the zip windows are "
                     f"preprocessed differently: pass data_dir (--data_dir) of the built dataset")
  else:
    x, y = windows_from_zip(split, **zip_kwargs)
  if limit is not None and limit < len(x):
    keep = np.sort(np.random.default_rng(seed).choice(len(x), limit, replace=False))
    x, y = x[keep], y[keep]
  return spec.apply(x), y
