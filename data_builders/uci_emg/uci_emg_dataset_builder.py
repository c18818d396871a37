"""TFDS builder for UCI "EMG data for gestures" (Lobov et al., Sensors 2018): 8-ch Myo, 6 gestures.

Reads the publisher's zip (or its unpacked folder) from `manual_dir`, holds the irregular ~1 kHz
rows onto a uniform 1 kHz grid, filters each recording zero-phase, scales to Myo integer units and
slides windows inside each run of constant gesture. See README.md for every choice.
"""

from __future__ import annotations

import dataclasses
import io
import re
import zipfile
from collections.abc import Callable, Iterator

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from data_builders import emg_common

NUM_CHANNELS = 8
GRID_RATE_HZ = 1000.0
HEADER = "time\t" + "\t".join(f"channel{i}" for i in range(1, NUM_CHANNELS + 1)) + "\tclass"
CLASS_NAMES = ("rest", "fist", "wrist_flexion", "wrist_extension", "radial_deviation",
               "ulnar_deviation")
UNMARKED, EXTENDED_PALM = 0, 7   # raw classes that are never written
MYO_SCALE = 1e5                  # the files store Myo int8 samples times 1e-5
UNPACKED_DIR = "EMG_data_for_gestures-master"
ZIP_NAMES = ("EMG_data_for_gestures.zip", "EMG_data_for_gestures-master.zip")
RECORDING_RE = re.compile(r"(?:^|/)(\d{2})/([12])_raw_data_[^/]*\.txt$")
UNLABELED = "none"               # label of `all_windows` windows that are not inside one gesture
VALIDATION_SUBJECTS = range(17, 20)
TEST_FROM_SUBJECT = 20


@dataclasses.dataclass(frozen=True)
class Recording:
  """One series file of one subject, with a callable that returns its bytes."""

  subject: int
  series: int
  name: str
  read: Callable[[], bytes]


def find_recordings(manual_dir: epath.Path) -> list[Recording]:
  """Lists the recordings in `manual_dir` (the zip, its unpacked folder, or the subject folders).

  Raises:
    emg_common.CorpusError: the directory does not exist or holds no recording.
  """
  manual_dir = epath.Path(manual_dir)
  if not manual_dir.is_dir():
    raise emg_common.CorpusError(f"manual_dir {manual_dir} does not exist; put "
                                 f"{ZIP_NAMES[0]} or its unpacked folder there")
  found: list[Recording] = []
  for zip_name in ZIP_NAMES:
    zip_path = manual_dir / zip_name
    if zip_path.exists():
      found = _zip_recordings(zip_path)
      break
  if not found:
    paths = [*manual_dir.glob(f"{UNPACKED_DIR}/*/*_raw_data_*.txt"),
             *manual_dir.glob("*/*_raw_data_*.txt")]
    for path in sorted(paths):
      match = RECORDING_RE.search(path.as_posix())
      if match:
        found.append(Recording(int(match[1]), int(match[2]), path.as_posix(), path.read_bytes))
  if not found:
    raise emg_common.CorpusError(
        f"manual_dir {manual_dir} holds no UCI recording: expected {ZIP_NAMES[0]} or files "
        f"{UNPACKED_DIR}/<SS>/<k>_raw_data_*.txt")
  keys = [(r.subject, r.series) for r in found]
  if len(set(keys)) != len(keys):
    raise emg_common.CorpusError(f"manual_dir {manual_dir} holds two files for one subject and "
                                 "series; keep either the zip or one unpacked copy")
  return sorted(found, key=lambda r: (r.subject, r.series))


def _zip_recordings(zip_path: epath.Path) -> list[Recording]:
  try:
    with zipfile.ZipFile(zip_path) as archive:
      members = archive.namelist()
  except zipfile.BadZipFile as error:
    raise emg_common.CorpusError(f"{zip_path}: not a readable zip ({error})") from error

  def reader(member: str) -> Callable[[], bytes]:
    def read() -> bytes:
      try:
        with zipfile.ZipFile(zip_path) as archive:
          return archive.read(member)
      except (zipfile.BadZipFile, EOFError, OSError) as error:
        raise emg_common.CorpusError(f"{zip_path}:{member}: unreadable ({error})") from error
    return read

  recordings = []
  for member in members:
    match = RECORDING_RE.search(member)
    if match:
      recordings.append(Recording(int(match[1]), int(match[2]), f"{zip_path}:{member}",
                                  reader(member)))
  return recordings


def parse_recording(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Parses one tab-separated file into (time_ms [T], emg [T, 8] as stored, class [T] int).

  Raises:
    emg_common.CorpusError: wrong header, ragged or non-numeric rows, NaN, time not increasing,
      or a class outside 0..7; the message names the file.
  """
  text = data.decode("ascii", errors="replace")
  header, _, body = text.partition("\n")
  if header.strip() != HEADER:
    raise emg_common.CorpusError(f"{name}: header {header.strip()!r} is not {HEADER!r}")
  try:
    table = np.loadtxt(io.StringIO(body), delimiter="\t", dtype=np.float64, ndmin=2)
  except ValueError as error:
    raise emg_common.CorpusError(f"{name}: malformed row ({error})") from error
  if table.shape[0] < 2 or table.shape[1] != NUM_CHANNELS + 2:
    raise emg_common.CorpusError(f"{name}: expected rows of {NUM_CHANNELS + 2} columns, "
                                 f"got a table of shape {table.shape}")
  emg_common.check_finite(table, name)
  time_ms, emg, classes = table[:, 0], table[:, 1:-1], table[:, -1]
  steps = np.diff(time_ms)
  if (steps <= 0).any():
    row = int(np.flatnonzero(steps <= 0)[0]) + 2
    raise emg_common.CorpusError(f"{name}: time does not increase at data row {row} "
                                 f"({time_ms[row - 2]:g} -> {time_ms[row - 1]:g} ms)")
  bad = (classes != np.round(classes)) | (classes < 0) | (classes > EXTENDED_PALM)
  if bad.any():
    row = int(np.flatnonzero(bad)[0])
    raise emg_common.CorpusError(f"{name}: class {classes[row]:g} at data row {row + 1} is not in "
                                 f"0..{EXTENDED_PALM}")
  return time_ms, emg, classes.astype(np.int64)


def process_recording(time_ms: np.ndarray, emg_tc: np.ndarray, classes_t: np.ndarray,
                      config: emg_common.EmgBuilderConfig) -> tuple[np.ndarray, np.ndarray]:
  """Holds, filters, scales and resamples one recording; returns (emg [8, T'], class [T'])."""
  held = emg_common.zero_order_hold(time_ms / 1000.0,
                                    np.concatenate([emg_tc, classes_t[:, None]], axis=1),
                                    GRID_RATE_HZ)
  sos = emg_common.bandpass_notch_sos(GRID_RATE_HZ, config.band_hz, config.notch_hz)
  emg_ct = emg_common.filter_recording(held[:, :-1].T * MYO_SCALE, sos)
  labels = held[:, -1].astype(np.int64)
  down = int(round(GRID_RATE_HZ / config.sample_rate_hz))
  if down != 1:
    emg_ct = emg_common.resample_rational(emg_ct, 1, down)
    labels = labels[::down]
  return emg_ct, labels


@dataclasses.dataclass(eq=False)
class UciConfig(emg_common.EmgBuilderConfig):
  """A UCI variant; `all_windows` slides windows over whole recordings, labeled or not.

  With `all_windows`, a window that lies inside one run of a written gesture gets that label;
  every other window (unmarked rows, class 7, or a gesture boundary inside it) gets the extra
  label "none". Such a dataset is for pretraining, which ignores labels.
  """

  all_windows: bool = False


class Builder(tfds.core.GeneratorBasedBuilder):
  """UCI EMG data for gestures: 8-channel Myo windows, 6 gesture classes, subject splits."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "1 kHz zero-order-hold grid, 20-90 Hz band-pass + 50 Hz notch."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Download https://archive.ics.uci.edu/static/public/481/emg+data+for+gestures.zip and put "
      f"{ZIP_NAMES[0]} (or its unpacked EMG_data_for_gestures-master/ folder) in manual_dir.")
  BUILDER_CONFIGS = [
      UciConfig(
          name="default", description="1 kHz grid, window 1000 samples (1.0 s), stride 250.",
          sample_rate_hz=1000.0, window=1000, stride=250, band_hz=(20.0, 90.0), notch_hz=50.0),
      UciConfig(
          name="hz200", description="Resampled to 200 Hz, window 200 samples (1.0 s), stride 50.",
          sample_rate_hz=200.0, window=200, stride=50, band_hz=(20.0, 90.0), notch_hz=50.0),
      UciConfig(
          name="hz200_all", description="As hz200, but every window of each recording, labeled "
          "or not (label 'none'), stride 20 (0.1 s): unlabeled data for pretraining.",
          sample_rate_hz=200.0, window=200, stride=20, band_hz=(20.0, 90.0), notch_hz=50.0,
          all_windows=True),
  ]
  DEFAULT_BUILDER_CONFIG_NAME = "default"

  def _info(self) -> tfds.core.DatasetInfo:
    names = CLASS_NAMES + (UNLABELED,) if self.builder_config.all_windows else CLASS_NAMES
    return emg_common.windowed_info(
        self, NUM_CHANNELS, {"label": tfds.features.ClassLabel(names=names)},
        homepage="https://archive.ics.uci.edu/dataset/481/emg+data+for+gestures",
        supervised_target="label")

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    recordings = find_recordings(emg_common.manual_dir(dl_manager))
    by_split: dict[str, list[Recording]] = {}
    for recording in recordings:
      split = emg_common.subject_split(recording.subject, validation=VALIDATION_SUBJECTS,
                                       test_from=TEST_FROM_SUBJECT)
      by_split.setdefault(split, []).append(recording)
    return {split: self._generate_examples(items) for split, items in by_split.items()}

  def _generate_examples(self, recordings: list[Recording]) -> Iterator[tuple[str, dict]]:
    config = self.builder_config
    for recording in recordings:
      time_ms, emg_tc, classes = parse_recording(recording.read(), recording.name)
      emg_ct, labels = process_recording(time_ms, emg_tc, classes, config)
      if config.all_windows:
        yield from _all_windows(recording, emg_ct, labels, config)
        continue
      occurrences: dict[int, int] = {}
      for run, (start, stop, cls) in enumerate(emg_common.constant_runs(labels)):
        if cls in (UNMARKED, EXTENDED_PALM):
          continue
        occurrences[cls] = occurrences.get(cls, 0) + 1
        for index, window in emg_common.iter_windows(emg_ct, start, stop, config.window,
                                                     config.stride):
          key = f"{recording.subject:02d}_{recording.series}_{run:02d}_{index:03d}"
          yield key, {"emg": window, "label": cls - 1, "subject": recording.subject,
                      "session": recording.series, "repetition": occurrences[cls]}



def _all_windows(recording: Recording, emg_ct: np.ndarray, labels: np.ndarray,
                 config: UciConfig) -> Iterator[tuple[str, dict]]:
  """Every window of one recording; gesture label inside one written run, else "none"."""
  run_of = np.zeros(labels.size, dtype=np.int64)
  repetition_of_run: list[int] = []
  occurrences: dict[int, int] = {}
  for run, (start, stop, cls) in enumerate(emg_common.constant_runs(labels)):
    run_of[start:stop] = run
    occurrences[cls] = occurrences.get(cls, 0) + 1
    repetition_of_run.append(occurrences[cls])
  none_label = len(CLASS_NAMES)
  for index, window in emg_common.iter_windows(emg_ct, 0, labels.size, config.window,
                                               config.stride):
    begin = index * config.stride
    first, last = begin, begin + config.window - 1
    cls = int(labels[first])
    labeled = run_of[first] == run_of[last] and cls not in (UNMARKED, EXTENDED_PALM)
    key = f"{recording.subject:02d}_{recording.series}_all_{index:05d}"
    yield key, {"emg": window, "label": cls - 1 if labeled else none_label,
                "subject": recording.subject, "session": recording.series,
                "repetition": repetition_of_run[run_of[first]] if labeled else 0}
