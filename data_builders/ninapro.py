"""Shared reading and windowing of NinaPro `.mat` sessions (DB5, DB6, DB7, DB8).

A NinaPro file `S<subject>_<E|D..>..._<A|T><n>.mat` holds `emg` [T, C] plus per-sample
`restimulus` / `rerepetition` (relabelled movement and repetition, 0 = rest) and, for some
databases, `glove` [T, 18 or 22]. MAT v5 files are read with scipy, v7.3 (HDF5) with h5py.
Subject, exercise and acquisition come from the file name: the scalars inside are wrong in
several published files.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterator

import h5py
import numpy as np
import scipy.io
import tensorflow_datasets as tfds
from etils import epath

from data_builders import emg_common

MAT73_MARKER = b"MATLAB 7.3 MAT-file"
FILE_RE = re.compile(r"^S(\d+)_(?:E(\d+)_A(\d+)|D(\d+)_T(\d+))\.mat$")
# Label vectors a few samples longer/shorter than `emg` occur in DB6; more than this is an error.
MAX_LENGTH_MISMATCH = 100


@dataclasses.dataclass(frozen=True)
class SessionFile:
  """One NinaPro file and the ids its name encodes (exercise/day and acquisition/time)."""

  path: str
  subject: int
  part: int      # exercise (E) or day (D)
  take: int      # acquisition (A) or time of day (T)


def find_sessions(manual_dir: epath.PathLike) -> list[SessionFile]:
  """Lists NinaPro files up to two folders below `manual_dir` (zips unpacked per subject).

  Raises:
    emg_common.CorpusError: the folder is missing or holds no `S<n>_..._.mat` file.
  """
  root = epath.Path(manual_dir)
  if not root.is_dir():
    raise emg_common.CorpusError(f"manual_dir {root} does not exist")
  found = {}
  for pattern in ("*.mat", "*/*.mat", "*/*/*.mat"):
    for path in root.glob(pattern):
      match = FILE_RE.match(path.name)
      if match:
        exercise, acquisition, day, time_of_day = match.groups()[1:]
        part, take = (int(exercise), int(acquisition)) if exercise else (int(day), int(time_of_day))
        if path.name in found:
          raise emg_common.CorpusError(f"{root}: {path.name} found twice ({found[path.name].path} "
                                       f"and {path}); keep one copy")
        found[path.name] = SessionFile(path.as_posix(), int(match[1]), part, take)
  if not found:
    raise emg_common.CorpusError(f"manual_dir {root} holds no NinaPro file named like "
                                 "S1_E1_A1.mat or S1_D1_T1.mat")
  return sorted(found.values(), key=lambda s: (s.subject, s.part, s.take))


def load_mat(path: str, names: tuple[str, ...]) -> dict[str, np.ndarray]:
  """Reads variables `names` from a MAT v5 or v7.3 file as arrays shaped as in MATLAB.

  Raises:
    emg_common.CorpusError: unreadable/truncated file or a missing variable (names the file).
  """
  with epath.Path(path).open("rb") as handle:
    header = handle.read(128)
  try:
    if header.startswith(MAT73_MARKER):
      with h5py.File(path, "r") as mat:
        missing = [n for n in names if n not in mat]
        data = {n: np.asarray(mat[n][()]).T for n in names if n in mat}   # column-major on disk
    else:
      mat = scipy.io.loadmat(path, variable_names=names)
      missing = [n for n in names if n not in mat]
      data = {n: mat[n] for n in names if n in mat}
  except (OSError, ValueError, TypeError, EOFError, NotImplementedError) as error:
    raise emg_common.CorpusError(f"{path}: unreadable MAT file ({type(error).__name__}: "
                                 f"{error})") from error
  if missing:
    raise emg_common.CorpusError(f"{path}: missing variable(s) {missing}")
  return data


def read_session(path: str, *, raw_channels: int, drop_columns: tuple[int, ...] = (),
                 with_glove: int = 0) -> dict[str, np.ndarray]:
  """Returns `emg` float64 [C, T], `stimulus`, `repetition` int [T] and optionally `glove` [G, T].

  Raises:
    emg_common.CorpusError: wrong channel count, NaN in emg, label length far from emg length.
  """
  names = ("emg", "restimulus", "rerepetition") + (("glove",) if with_glove else ())
  mat = load_mat(path, names)
  emg = np.asarray(mat["emg"], dtype=np.float64)
  if emg.ndim != 2 or emg.shape[1] != raw_channels:
    raise emg_common.CorpusError(f"{path}: emg has shape {emg.shape}, expected (T, {raw_channels})")
  emg_common.check_finite(emg, f"{path} (emg)")
  stimulus = np.asarray(mat["restimulus"]).reshape(-1).astype(np.int64)
  repetition = np.asarray(mat["rerepetition"]).reshape(-1).astype(np.int64)
  length = min(emg.shape[0], stimulus.size, repetition.size)
  if max(emg.shape[0], stimulus.size, repetition.size) - length > MAX_LENGTH_MISMATCH:
    raise emg_common.CorpusError(f"{path}: emg has {emg.shape[0]} rows but restimulus "
                                 f"{stimulus.size} and rerepetition {repetition.size}")
  out = {"emg": np.delete(emg[:length], list(drop_columns), axis=1).T,
         "stimulus": stimulus[:length], "repetition": repetition[:length]}
  if with_glove:
    glove = np.asarray(mat["glove"], dtype=np.float64)
    if glove.ndim != 2 or glove.shape[1] != with_glove or glove.shape[0] < length:
      raise emg_common.CorpusError(f"{path}: glove has shape {glove.shape}, expected "
                                   f"({length}, {with_glove})")
    out["glove"] = glove[:length].T
  return out


def labelled_runs(stimulus: np.ndarray,
                  repetition: np.ndarray) -> Iterator[tuple[int, int, int, int]]:
  """Yields (start, stop, movement, repetition) for each run of constant movement.

  Rest (movement 0) carries repetition 0 in NinaPro; a rest run is given the repetition of the
  movement before it (the first rest, the one after it), so rest splits with its repetition.
  """
  runs = emg_common.constant_runs(stimulus * 1000 + np.maximum(repetition, 0))
  reps = [code % 1000 for _, _, code in runs]
  movements = [code // 1000 for _, _, code in runs]
  for i, (start, stop, _) in enumerate(runs):
    rep = reps[i]
    if movements[i] == 0:
      before = [r for m, r in zip(movements[:i], reps[:i]) if m != 0]
      after = [r for m, r in zip(movements[i:], reps[i:]) if m != 0]
      rep = before[-1] if before else (after[0] if after else 0)
    yield start, stop, movements[i], rep


def check_labels(path: str, stimulus: np.ndarray, num_movements: int) -> None:
  """Raises CorpusError if a movement label is outside 0..num_movements."""
  bad = (stimulus < 0) | (stimulus > num_movements)
  if bad.any():
    raise emg_common.CorpusError(f"{path}: restimulus {int(stimulus[bad][0])} outside "
                                 f"0..{num_movements}")


@dataclasses.dataclass(frozen=True)
class WindowSpec:
  """Everything a worker needs to turn one classification session into windows (picklable).

  The last three fields are optional label and session rules (defaults: DB5's behaviour):
  `label_values` lists a corpus's raw labels when they are not 0..N (DB6 uses 0,1,3,4,...; the
  class id is the position in the list); `exercise_sizes` gives per-exercise movement counts for
  corpora whose files may number labels per exercise or globally (DB7); `takes_per_part` > 0
  makes `session` = (part - 1) * takes_per_part + take (DB6: day and time of day -> 1..10).
  """

  raw_channels: int
  drop_columns: tuple[int, ...]
  rate_hz: float
  sos: np.ndarray = dataclasses.field(compare=False)
  window: int
  stride: int
  num_movements: int                       # per-exercise maximum label, for validation
  exercise_offsets: tuple[tuple[int, int], ...]   # (exercise, offset added to non-zero labels)
  label_values: tuple[int, ...] = ()
  exercise_sizes: tuple[tuple[int, int], ...] = ()
  takes_per_part: int = 0


def class_ids(path: str, stimulus: np.ndarray, spec: WindowSpec, exercise: int) -> np.ndarray:
  """Maps one file's raw movement labels [T] to class ids [T] (0 = rest) under `spec`'s rules.

  Raises:
    emg_common.CorpusError: a label outside the corpus's label set (names the file and value).
  """
  offset = dict(spec.exercise_offsets).get(exercise, 0)
  if spec.label_values:
    lookup = np.full(max(spec.label_values) + 1, -1, dtype=np.int64)
    lookup[list(spec.label_values)] = np.arange(len(spec.label_values))
    known = (stimulus >= 0) & (stimulus < lookup.size)
    ids = np.where(known, lookup[np.clip(stimulus, 0, lookup.size - 1)], -1)
    if (ids < 0).any():
      raise emg_common.CorpusError(f"{path}: restimulus {int(stimulus[ids < 0][0])} is not one of "
                                   f"the corpus's labels {list(spec.label_values)}")
    return ids
  size = dict(spec.exercise_sizes).get(exercise)
  if size is None:
    check_labels(path, stimulus, spec.num_movements)
    return np.where(stimulus > 0, stimulus + offset, 0)
  moving = stimulus[stimulus != 0]
  if not moving.size:
    return np.zeros_like(stimulus)
  low, high = int(moving.min()), int(moving.max())
  # A file numbered across exercises has no label <= offset; one numbered alone has none > size.
  if offset < low and high <= offset + size:
    return stimulus.astype(np.int64)
  if 0 < low and high <= size:
    return np.where(stimulus > 0, stimulus + offset, 0)
  raise emg_common.CorpusError(
      f"{path}: exercise {exercise} restimulus spans {low}..{high}, which fits neither 1..{size} "
      f"(numbered within the exercise) nor {offset + 1}..{offset + size} (numbered across "
      "exercises)")


def session_id(session: SessionFile, spec: WindowSpec) -> int:
  """Returns the `session` field of a file's records (its part, or part and take combined)."""
  if spec.takes_per_part:
    return (session.part - 1) * spec.takes_per_part + session.take
  return session.part


def session_examples(session: SessionFile, *, split: str, spec: WindowSpec,
                     split_of) -> Iterator[tuple[str, dict]]:
  """Yields the windows of `session` that belong to `split` (windows stay inside one run).

  `split_of(session, repetition) -> str | None` decides per run; None drops the run.
  """
  data = read_session(session.path, raw_channels=spec.raw_channels,
                      drop_columns=spec.drop_columns)
  labels = class_ids(session.path, data["stimulus"], spec, session.part)
  emg_ct = emg_common.filter_recording(data["emg"], spec.sos)
  name = epath.Path(session.path).stem
  session_number = session_id(session, spec)
  for run, (start, stop, label, rep) in enumerate(labelled_runs(labels, data["repetition"])):
    if split_of(session, rep) != split:
      continue
    for index, window in emg_common.iter_windows(emg_ct, start, stop, spec.window, spec.stride):
      yield f"{name}_{run:04d}_{index:04d}", {
          "emg": window, "label": label, "subject": session.subject, "session": session_number,
          "repetition": rep}


class ClassificationBuilder(emg_common.BeamAwareBuilder, skip_registration=True):
  """Base of the NinaPro gesture builders: subclasses set the corpus constants and `split_of`."""

  RAW_CHANNELS = 16
  DROP_COLUMNS: tuple[int, ...] = ()
  RATE_HZ = 2000.0
  NUM_MOVEMENTS = 0              # largest per-file label
  EXERCISE_OFFSETS: tuple[tuple[int, int], ...] = ()
  NUM_CLASSES = 0                # including rest
  LABEL_VALUES: tuple[int, ...] = ()          # see WindowSpec
  EXERCISE_SIZES: tuple[tuple[int, int], ...] = ()
  TAKES_PER_PART = 0
  HOMEPAGE = ""
  REPETITION_SPLITS: dict[int, str] = {}      # split_by "protocol": repetition -> split
  VALIDATION_SUBJECTS: tuple[int, ...] = ()   # split_by "subject"
  TEST_FROM_SUBJECT = 0
  DAY_SPLITS: dict[int, str] = {}             # split_by "day": day (file part) -> split

  @property
  def num_channels(self) -> int:
    return self.RAW_CHANNELS - len(self.DROP_COLUMNS)

  def split_of(self, session: SessionFile, repetition: int) -> str | None:
    """Returns the split of a run (None = unused) under the config's `split_by` rule.

    "protocol": by repetition (`REPETITION_SPLITS`); "subject": subjects in
    `VALIDATION_SUBJECTS` validation, from `TEST_FROM_SUBJECT` on test, the rest train;
    "day": by the file's day (`DAY_SPLITS`).
    """
    split_by = self.builder_config.split_by
    if split_by == "subject":
      return emg_common.subject_split(session.subject, validation=self.VALIDATION_SUBJECTS,
                                      test_from=self.TEST_FROM_SUBJECT)
    if split_by == "day":
      return self.DAY_SPLITS.get(session.part)
    return self.REPETITION_SPLITS.get(repetition)

  def splits_of_file(self, session: SessionFile) -> set[str]:
    """Splits a file can contribute to: all three by repetition, else the file's one split."""
    if self.builder_config.split_by == "protocol":
      return {"train", "validation", "test"}
    split = self.split_of(session, 0)
    return {split} if split else set()

  def _info(self):
    return emg_common.windowed_info(
        self, self.num_channels, {"label": tfds.features.ClassLabel(num_classes=self.NUM_CLASSES)},
        homepage=self.HOMEPAGE, supervised_target="label")

  def _split_generators(self, dl_manager):
    sessions = find_sessions(emg_common.manual_dir(dl_manager))
    config = self.builder_config
    spec = WindowSpec(self.RAW_CHANNELS, self.DROP_COLUMNS, self.RATE_HZ,
                      emg_common.bandpass_notch_sos(self.RATE_HZ, config.band_hz, config.notch_hz),
                      config.window, config.stride, self.NUM_MOVEMENTS, self.EXERCISE_OFFSETS,
                      self.LABEL_VALUES, self.EXERCISE_SIZES, self.TAKES_PER_PART)
    generators = {}
    for split in ("train", "validation", "test"):
      items = [s for s in sessions if split in self.splits_of_file(s)]
      if items:
        examples_of = functools.partial(session_examples, split=split, spec=spec,
                                        split_of=self.split_of)
        generators[split] = self._examples_from(items, examples_of)
    return generators
