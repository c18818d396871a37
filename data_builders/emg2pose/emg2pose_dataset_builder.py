"""TFDS builder for emg2pose (Meta, NeurIPS 2024): 16-channel 2 kHz wrist sEMG, pretraining windows.

Each HDF5 session file holds one hand in one ~1 min stage (group `emg2pose`, compound dataset
`timeseries` with fields `time`, `joint_angles` [20], `emg` [16]). The 431 GB corpus is meant to be
built with Beam (`--beam_pipeline_options=...`); without it the same examples come from a generator.
"""

from __future__ import annotations

import csv
import functools
import logging
from collections.abc import Iterator

import h5py
import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from data_builders import emg_common

NUM_CHANNELS = 16
RATE_HZ = 2000.0
DATA_FOLDER = "emg2pose_data"
METADATA_CSV = "metadata.csv"
CSV_SPLITS = {"train": "train", "val": "validation", "test": "test"}

log = logging.getLogger(__name__)


def data_folder(manual_dir: epath.Path) -> epath.Path:
  """Returns the folder holding the .hdf5 files and metadata.csv (the tar's root or manual_dir)."""
  manual_dir = epath.Path(manual_dir)
  if not manual_dir.is_dir():
    raise emg_common.CorpusError(f"manual_dir {manual_dir} does not exist")
  nested = manual_dir / DATA_FOLDER
  return nested if nested.is_dir() else manual_dir


def read_metadata(folder: epath.Path) -> list[dict[str, str]]:
  """Reads metadata.csv; raises CorpusError if it is absent or lacks filename/user/split."""
  path = folder / METADATA_CSV
  if not path.exists():
    raise emg_common.CorpusError(f"{path} is missing: the split of every session comes from it")
  with path.open() as handle:
    rows = list(csv.DictReader(handle))
  needed = {"filename", "user", "session", "split"}
  if not rows or not needed <= set(rows[0]):
    raise emg_common.CorpusError(f"{path}: needs a header with {sorted(needed)} and >= 1 row")
  for row in rows:
    if row["split"] not in CSV_SPLITS:
      raise emg_common.CorpusError(f"{path}: split {row['split']!r} of {row['filename']} is not "
                                   f"one of {sorted(CSV_SPLITS)}")
  return rows


def read_session(path: str) -> np.ndarray:
  """Returns the EMG of one session file as float64 [16, T]; CorpusError names the file."""
  try:
    with h5py.File(path, "r") as handle:
      if "emg2pose/timeseries" not in handle:
        raise emg_common.CorpusError(f"{path}: no dataset emg2pose/timeseries")
      series = handle["emg2pose/timeseries"]
      if series.dtype.names is None or not {"time", "emg"} <= set(series.dtype.names):
        raise emg_common.CorpusError(f"{path}: timeseries has fields {series.dtype.names}, "
                                     "expected time and emg")
      emg = series.fields("emg")[()]
      time_s = series.fields("time")[()]
  except OSError as error:
    raise emg_common.CorpusError(f"{path}: unreadable HDF5 ({error})") from error
  if emg.ndim != 2 or emg.shape[1] != NUM_CHANNELS:
    raise emg_common.CorpusError(f"{path}: emg has shape {emg.shape}, expected (T, {NUM_CHANNELS})")
  if (np.diff(time_s) <= 0).any():
    raise emg_common.CorpusError(f"{path}: time stamps are not strictly increasing")
  emg_common.check_finite(emg, path)
  return emg.T.astype(np.float64)


def session_examples(row: dict[str, str], *, folder: str, sos: np.ndarray, window: int,
                     stride: int) -> Iterator[tuple[str, dict]]:
  """Yields the windows of one session (module-level so Beam workers can pickle it)."""
  emg_ct = emg_common.filter_recording(read_session(f"{folder}/{row['filename']}.hdf5"), sos)
  subject = emg_common.stable_id(row["user"])
  session = emg_common.stable_id(row["session"])
  for index, window_ct in emg_common.iter_windows(emg_ct, 0, emg_ct.shape[1], window, stride):
    yield f"{row['filename']}_{index:05d}", {"emg": window_ct, "subject": subject,
                                             "session": session, "repetition": -1}


class Builder(emg_common.BeamAwareBuilder):
  """emg2pose sEMG in 0.5 s windows for pretraining, split as in metadata.csv or by user."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "20-450 Hz band-pass + 50 Hz notch at 2 kHz, 1000/500 windows."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Download https://fb-ctrl-oss.s3.amazonaws.com/emg2pose/emg2pose_dataset.tar (or the mini "
      "set emg2pose_dataset_mini.tar), extract it and pass the folder holding emg2pose_data/.")
  BUILDER_CONFIGS = [
      emg_common.pretraining_config("default", "metadata.csv splits."),
      emg_common.pretraining_config(
          "by_user", "Users hashed 80/10/10 into train/validation/test.", "subject"),
  ]
  DEFAULT_BUILDER_CONFIG_NAME = "default"

  def _info(self) -> tfds.core.DatasetInfo:
    return emg_common.windowed_info(self, NUM_CHANNELS, {},
                                    homepage="https://github.com/facebookresearch/emg2pose")

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    folder = data_folder(emg_common.manual_dir(dl_manager))
    rows = read_metadata(folder)
    present = {p.stem for p in folder.glob("*.hdf5")}
    listed = [row for row in rows if row["filename"] in present]
    missing = len(rows) - len(listed)
    unlisted = len(present - {row["filename"] for row in rows})
    if missing or unlisted:
      log.warning("%s: %d sessions of metadata.csv are absent (skipped), %d .hdf5 files are not "
                  "in metadata.csv (skipped)", folder, missing, unlisted)
    if not listed:
      raise emg_common.CorpusError(f"{folder}: none of the {len(rows)} sessions in metadata.csv "
                                   "is present as .hdf5")
    self.info.metadata.update(sessions=len(listed), sessions_missing=missing,
                              files_not_in_metadata=unlisted)
    by_split: dict[str, list[dict[str, str]]] = {}
    for row in sorted(listed, key=lambda r: r["filename"]):
      split = (emg_common.hashed_subject_split(row["user"])
               if self.builder_config.split_by == "subject" else CSV_SPLITS[row["split"]])
      by_split.setdefault(split, []).append(row)
    config = self.builder_config
    examples_of = functools.partial(
        session_examples, folder=str(folder), window=config.window, stride=config.stride,
        sos=emg_common.bandpass_notch_sos(RATE_HZ, config.band_hz, config.notch_hz))
    return {split: self._examples_from(items, examples_of) for split, items in by_split.items()}

