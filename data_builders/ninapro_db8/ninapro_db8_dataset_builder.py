"""TFDS builder for NinaPro DB8: 16-channel EMG on a 2 kHz grid, finger kinematics as 5 DoA.

Files `S<N>_E1_A<k>.mat` (MAT v5), k = 1, 2 (10 repetitions of 9 movements) and 3 (2
repetitions). The target `angles` [5, W] maps the 18 CyberGlove DoF to 5 degrees of actuation
with the fixed linear map of Krasoulis et al. 2019 (supplementary Eq. S2). Windows run across
movements but never across glove rows holding NaN, nor across a split boundary.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from data_builders import emg_common, ninapro

SPLITS = ("train", "validation", "test")
NUM_CHANNELS = 16
NUM_DOF = 18
NUM_DOA = 5
NUM_MOVEMENTS = 9
RATE_HZ = 2000.0
VALIDATION_REPETITION = 10          # carved out of A2: its last repetition
VALIDATION_SUBJECTS = (7, 8)
TEST_FROM_SUBJECT = 9               # 9-10 intact, 11-12 amputees
# DoF -> DoA map (Krasoulis, Vijayakumar, Nazarpour 2019, supplementary Eq. S2), as
# {DoA: {DoF: weight}} with 1-based glove DoF numbers. DoA: thumb rotation, thumb flexion,
# index flexion, middle flexion, ring + little flexion.
DOA_WEIGHTS = {
    1: {1: 0.639, 2: 0.383, 4: -0.639, 17: -0.19},
    2: {3: 1.0},
    3: {5: 0.4, 6: 0.6},
    4: {7: 0.4, 8: 0.6},
    5: {10: 0.1667, 11: 0.3333, 13: 0.1667, 14: 0.3333},
}

log = logging.getLogger(__name__)


def dof_to_doa_matrix() -> np.ndarray:
  """Returns the [5, 18] matrix M with angles_doa = M @ glove_dof."""
  matrix = np.zeros((NUM_DOA, NUM_DOF))
  for doa, weights in DOA_WEIGHTS.items():
    for dof, weight in weights.items():
      matrix[doa - 1, dof - 1] = weight
  return matrix


def sample_splits(session: ninapro.SessionFile, repetition_t: np.ndarray, split_by: str,
                  valid_t: np.ndarray) -> np.ndarray:
  """Returns per-sample split codes (index into SPLITS, -1 = unused) of one acquisition."""
  if split_by == "subject":
    split = emg_common.subject_split(session.subject, validation=VALIDATION_SUBJECTS,
                                     test_from=TEST_FROM_SUBJECT)
    codes = np.full(repetition_t.shape, SPLITS.index(split))
  elif session.take == 3:
    codes = np.full(repetition_t.shape, SPLITS.index("test"))
  else:
    codes = np.full(repetition_t.shape, SPLITS.index("train"))
    if session.take == 2:
      codes[repetition_t == VALIDATION_REPETITION] = SPLITS.index("validation")
  return np.where(valid_t, codes, -1)


def acquisition_examples(session: ninapro.SessionFile, *, split: str, split_by: str,
                         sos: np.ndarray, window: int,
                         stride: int) -> Iterator[tuple[str, dict]]:
  """Yields the windows of one acquisition file that belong to `split` (picklable for Beam)."""
  data = ninapro.read_session(session.path, raw_channels=NUM_CHANNELS, with_glove=NUM_DOF)
  ninapro.check_labels(session.path, data["stimulus"], NUM_MOVEMENTS)
  valid_t = np.isfinite(data["glove"]).all(axis=0)
  if not valid_t.all():
    log.warning("%s: %d of %d glove rows hold NaN; no window covers them", session.path,
                int((~valid_t).sum()), valid_t.size)
  repetition_t = np.zeros(valid_t.size, dtype=np.int64)
  for start, stop, _, rep in ninapro.labelled_runs(data["stimulus"], data["repetition"]):
    repetition_t[start:stop] = rep
  codes = sample_splits(session, repetition_t, split_by, valid_t)
  emg_ct = emg_common.filter_recording(data["emg"], sos)
  angles_dt = dof_to_doa_matrix() @ np.where(valid_t, data["glove"], 0.0)
  name = epath.Path(session.path).stem
  for start, stop, code in emg_common.constant_runs(codes):
    if code != SPLITS.index(split):
      continue
    for index, window_ct in emg_common.iter_windows(emg_ct, start, stop, window, stride):
      begin = start + index * stride
      yield f"{name}_{start:08d}_{index:05d}", {
          "emg": window_ct,
          "angles": angles_dt[:, begin:begin + window].astype(np.float32),
          "subject": session.subject, "session": session.take,
          "repetition": int(repetition_t[begin + window // 2])}


def _config(window: int, split_by: str) -> emg_common.EmgBuilderConfig:
  suffix = "_by_subject" if split_by == "subject" else ""
  splits = ("subjects 1-6 train / 7-8 validation / 9-12 test" if split_by == "subject" else
            "A1 + A2 train (A2 repetition 10 -> validation) / A3 test")
  return emg_common.EmgBuilderConfig(
      name=f"w{window}{suffix}",
      description=f"{splits}; windows {window} samples ({window / RATE_HZ:g} s), stride "
                  f"{window // 2}.",
      sample_rate_hz=RATE_HZ, window=window, stride=window // 2, band_hz=(20.0, 450.0),
      notch_hz=50.0, split_by=split_by)


class Builder(emg_common.BeamAwareBuilder):
  """NinaPro DB8 EMG windows with 5-DoA finger kinematics (16 ch, 2 kHz)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "20-450 Hz band-pass + 50 Hz notch at 2 kHz; Eq. S2 DoF -> DoA."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Download S1_E1_A1.mat ... S12_E1_A3.mat from https://ninapro.hevs.ch/instructions/DB8.html "
      "(https://ninapro.hevs.ch/files/DB8/S<N>_E1_A<k>.mat) into manual_dir.")
  BUILDER_CONFIGS = [_config(window, split_by) for split_by in ("protocol", "subject")
                     for window in (1000, 200)]
  DEFAULT_BUILDER_CONFIG_NAME = "w1000"

  def _info(self) -> tfds.core.DatasetInfo:
    shape = (NUM_DOA, self.builder_config.window)
    return emg_common.windowed_info(
        self, NUM_CHANNELS, {"angles": tfds.features.Tensor(shape=shape, dtype=np.float32)},
        homepage="https://ninapro.hevs.ch/instructions/DB8.html", supervised_target="angles")

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    sessions = ninapro.find_sessions(emg_common.manual_dir(dl_manager))
    config = self.builder_config
    examples_of = {
        split: functools.partial(
            acquisition_examples, split=split, split_by=config.split_by,
            sos=emg_common.bandpass_notch_sos(RATE_HZ, config.band_hz, config.notch_hz),
            window=config.window, stride=config.stride)
        for split in SPLITS}
    if config.split_by == "subject":
      files = {split: [s for s in sessions if emg_common.subject_split(
          s.subject, validation=VALIDATION_SUBJECTS, test_from=TEST_FROM_SUBJECT) == split]
               for split in SPLITS}
    else:
      files = {"train": [s for s in sessions if s.take in (1, 2)],
               "validation": [s for s in sessions if s.take == 2],
               "test": [s for s in sessions if s.take == 3]}
    return {split: self._examples_from(items, examples_of[split])
            for split, items in files.items() if items}
