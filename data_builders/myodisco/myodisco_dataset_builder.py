"""TFDS builder for MyoDisCo (LibEMG, J. Neural Eng. 2024): 14 people, 10 Myo gestures, confounds.

Each publisher CSV is one ~2 s performance of one gesture. The builder streams the CSVs out of
`MyoDisCo.tar.xz` (or its unpacked folder), filters each whole file zero-phase and cuts 1 s
windows over the whole file. Labels and repetitions come from the file names
`R_<rep>_C_<class>_EMG.csv`; the `metadata.json` files are only cross-checked. See README.md.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import posixpath
import re
from collections.abc import Callable, Iterable, Iterator
from typing import NoReturn

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from data_builders import emg_common, myo_common

CLASS_NAMES = ("double_tap", "extension", "finger_gun", "flexion", "hand_close", "hand_open",
               "point", "snap", "thumbs_up", "z_rest")
ARCHIVE_NAMES = ("MyoDisCo.tar.xz",)
ROOT = "MyoDisCo"
FOLDERS = ("day1", "day2", "positions/1", "positions/2", "positions/3", "positions/4")
SESSIONS = {"day1": 1, "day2": 2, **{f"positions/{p}": 10 + p for p in range(1, 5)}}
VALIDATION_REPS = range(16, 20)   # the last 4 of the 20 repetitions per class of a day
METADATA = "metadata.json"
PROTOCOLS = ("cross_day", "limb_position", "all")
CSV_RE = re.compile(r"S([1-9]\d*)/(day[12]|positions/[1-4])/R_(0|[1-9]\d*)_C_(0|[1-9]\d*)_EMG\.csv")
_LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, order=True)
class Recording:
  """One CSV of the corpus: a single performance of one gesture, named by its path."""

  subject: int
  session: int
  repetition: int
  label: int
  path: str          # below the corpus root, e.g. "S4/day1/R_3_C_7_EMG.csv"

  @property
  def folder(self) -> str:
    """"day1", "day2" or "positions/<p>"."""
    return self.path.split("/", 1)[1].rsplit("/", 1)[0]

  @property
  def key(self) -> str:
    """The file's part of the example keys, unique in the corpus."""
    return f"S{self.subject:02d}_{self.session:02d}_R{self.repetition:02d}_C{self.label}"


def iter_corpus(manual_dir: epath.Path | str,
                keep: Callable[[str], bool]) -> Iterator[myo_common.Member]:
  """The corpus files below `MyoDisCo/` that pass `keep` (archive or unpacked folder)."""
  return myo_common.iter_members(manual_dir, ARCHIVE_NAMES, ROOT, keep)


def survey(manual_dir: epath.Path | str) -> list[Recording]:
  """Lists every recording in `manual_dir` (one pass) and cross-checks the metadata.json files.

  Raises:
    emg_common.CorpusError: missing manual_dir or archive content, a truncated archive, a CSV
      named outside the publisher's scheme, a class outside 0..9, the same file twice, a person
      without one of the six folders, or a metadata.json that is unreadable or contradicts a
      file name (rep_idx / class_idx).
  """
  recordings: list[Recording] = []
  metadata: dict[str, dict[str, dict]] = {}
  for member in iter_corpus(manual_dir, _csv_or_metadata):
    if member.path.endswith(".csv"):
      recordings.append(_recording(member.path, member.source))
    else:
      metadata[posixpath.dirname(member.path)] = _metadata_entries(member.data, member.source)
  if not recordings:
    raise emg_common.CorpusError(f"manual_dir {manual_dir} holds no MyoDisCo recording "
                                 "S<n>/<folder>/R_<rep>_C_<class>_EMG.csv")
  paths = collections.Counter(r.path for r in recordings)
  twice = sorted(p for p, n in paths.items() if n > 1)
  if twice:
    raise emg_common.CorpusError(f"manual_dir {manual_dir}: {twice[0]} is there "
                                 f"{paths[twice[0]]} times")
  by_folder: dict[str, list[Recording]] = collections.defaultdict(list)
  for recording in recordings:
    by_folder[f"S{recording.subject}/{recording.folder}"].append(recording)
  for subject in sorted({r.subject for r in recordings}):
    for folder in FOLDERS:
      if f"S{subject}/{folder}" not in by_folder:
        raise emg_common.CorpusError(f"manual_dir {manual_dir}: folder {ROOT}/S{subject}/"
                                     f"{folder} is missing or holds no recording")
  _check_metadata(by_folder, metadata)
  return sorted(recordings)


def _csv_or_metadata(path: str) -> bool:
  return path.endswith(".csv") or posixpath.basename(path) == METADATA


def _recording(path: str, source: str) -> Recording:
  match = CSV_RE.fullmatch(path)
  if not match:
    raise emg_common.CorpusError(
        f"{source}: unexpected CSV; the corpus holds S<n>/day1|day2|positions/1..4/"
        "R_<rep>_C_<class>_EMG.csv")
  subject, folder, rep, label = match.groups()
  if int(label) >= len(CLASS_NAMES):
    raise emg_common.CorpusError(f"{source}: class {int(label)} is not one of "
                                 f"0..{len(CLASS_NAMES) - 1}")
  return Recording(int(subject), SESSIONS[folder], int(rep), int(label), path)


def _metadata_entries(data: bytes, source: str) -> dict[str, dict]:
  """{file name: entry} of one metadata.json (its non-object fields are settings, skipped)."""
  try:
    table = json.loads(data)
  except (UnicodeDecodeError, json.JSONDecodeError) as error:
    raise emg_common.CorpusError(f"{source}: not readable JSON ({error})") from error
  if not isinstance(table, dict):
    raise emg_common.CorpusError(f"{source}: expected a JSON object of file entries")
  entries = {}
  for name, entry in table.items():
    if not isinstance(entry, dict):
      continue
    if not (isinstance(entry.get("rep_idx"), int) and isinstance(entry.get("class_idx"), int)
            and isinstance(entry.get("class_name"), str)):
      raise emg_common.CorpusError(f"{source}: entry {name!r} lacks an integer rep_idx and "
                                   "class_idx and a class_name")
    entries[posixpath.basename(name)] = entry
  return entries


def _check_metadata(by_folder: dict[str, list[Recording]],
                    metadata: dict[str, dict[str, dict]]) -> None:
  """Raises on a metadata entry that contradicts its file name; logs the known quirks."""
  missing, other_names, absent = [], [], 0
  for folder, recordings in sorted(by_folder.items()):
    entries = metadata.get(folder)
    if entries is None:
      missing.append(folder)
      continue
    names = {posixpath.basename(r.path): r for r in recordings}
    absent += len(entries.keys() - names.keys())
    for name, recording in names.items():
      entry = entries.get(name)
      if entry is None:
        continue
      if (entry["rep_idx"], entry["class_idx"]) != (recording.repetition, recording.label):
        raise emg_common.CorpusError(
            f"{ROOT}/{folder}/{METADATA}: {name} is listed with rep_idx {entry['rep_idx']}, "
            f"class_idx {entry['class_idx']}, but its name says rep {recording.repetition}, "
            f"class {recording.label}")
    if any(e["class_idx"] < len(CLASS_NAMES) and e["class_name"] != CLASS_NAMES[e["class_idx"]]
           for e in entries.values()):
      other_names.append(folder)
  if missing or other_names or absent:
    _LOG.warning("metadata.json: missing in %d folder(s) %s; %d folder(s) %s list other class "
                 "names (labels follow the file names); %d listed file(s) absent",
                 len(missing), missing, len(other_names), other_names, absent)


def parse_csv(data: bytes, source: str) -> np.ndarray:
  """One publisher CSV (no header, 8 integer columns) -> int64 [T, 8].

  Raises:
    emg_common.CorpusError: not ASCII, an empty line, a row without 8 columns or a value that
      is not an integer; the message names `source` and the row (1-based line number).
  """
  try:
    lines = data.decode("ascii").splitlines()
  except UnicodeDecodeError as error:
    raise emg_common.CorpusError(f"{source}: not ASCII text (byte {error.start})") from error
  if not lines:
    raise emg_common.CorpusError(f"{source}: empty file, no samples")
  for row, line in enumerate(lines, start=1):
    if not line.strip():
      raise emg_common.CorpusError(f"{source}: row {row} is empty")
  try:
    table = np.loadtxt(lines, delimiter=",", dtype=np.int64, comments=None, ndmin=2)
  except ValueError as error:
    _raise_bad_row(lines, source, error)
  if table.shape[0] and table.shape[1] != myo_common.NUM_CHANNELS:
    raise emg_common.CorpusError(f"{source}: row 1 has {table.shape[1]} columns, expected "
                                 f"{myo_common.NUM_CHANNELS}")
  return table.reshape(-1, myo_common.NUM_CHANNELS)


def _raise_bad_row(lines: list[str], source: str, error: ValueError) -> NoReturn:
  """Finds the first bad row of a table numpy rejected and raises a CorpusError naming it."""
  for row, line in enumerate(lines, start=1):
    fields = line.split(",")
    if len(fields) != myo_common.NUM_CHANNELS:
      raise emg_common.CorpusError(f"{source}: row {row} has {len(fields)} columns, expected "
                                   f"{myo_common.NUM_CHANNELS}") from error
    for column, field in enumerate(fields, start=1):
      try:
        int(field)
      except ValueError:
        kind = "non-integer" if _is_float(field) else "non-numeric"
        raise emg_common.CorpusError(f"{source}: {kind} value {field.strip()!r} in row {row}, "
                                     f"column {column}") from error
  raise emg_common.CorpusError(f"{source}: malformed table ({error})") from error


def _is_float(text: str) -> bool:
  try:
    float(text)
  except ValueError:
    return False
  return True


def split_of(recording: Recording, protocol: str) -> str | None:
  """The split of `recording` under `protocol`, or None where the protocol does not use it.

  cross_day: day 1 trains (reps 16-19 validate), day 2 tests. limb_position: day 2 in the
  standard position trains (reps 16-19 validate), the four positions (also day 2) test.
  all: every file, by person (`myo_common.all_split`).
  """
  if protocol == "all":
    return myo_common.all_split(person_id(recording.subject))
  train_session, test_sessions = {"cross_day": (1, {2}),
                                  "limb_position": (2, {11, 12, 13, 14})}[protocol]
  if recording.session == train_session:
    return "validation" if recording.repetition in VALIDATION_REPS else "train"
  return "test" if recording.session in test_sessions else None


def person_id(subject: int) -> str:
  """The string a person is hashed by for the `all` split."""
  return f"myodisco/S{subject}"


def group_by_split(recordings: Iterable[Recording], protocol: str) -> dict[str, list[Recording]]:
  """{split: recordings} under `protocol`, in the order the splits are written."""
  by_split: dict[str, list[Recording]] = {}
  for recording in recordings:
    split = split_of(recording, protocol)
    if split is not None:
      by_split.setdefault(split, []).append(recording)
  order = ("train", "validation", "test")
  return {split: by_split[split] for split in order if split in by_split}


class Builder(tfds.core.GeneratorBasedBuilder):
  """MyoDisCo: 8-channel Myo windows of 10 discrete gestures, cross-day and limb-position splits."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Whole-file 1 s windows, 20-90 Hz band-pass + 50 Hz notch."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Download https://github.com/LibEMG/MyoDisCo (its S1..S14 folders) and put it, packed as "
      f"{ARCHIVE_NAMES[0]} with top folder {ROOT}/ or as the unpacked {ROOT}/ folder, in "
      "manual_dir.")
  BUILDER_CONFIGS = [
      myo_common.labeled_config(
          "cross_day", "Within person across days: day 1 trains (reps 16-19 validate), day 2 "
          "tests.", "cross_day"),
      myo_common.labeled_config(
          "limb_position", "Within person across limb positions, all on day 2: the standard "
          "position trains (reps 16-19 validate), positions 1-4 test.", "limb_position"),
      myo_common.all_config(),
  ]
  DEFAULT_BUILDER_CONFIG_NAME = "cross_day"

  def _info(self) -> tfds.core.DatasetInfo:
    return myo_common.info(self, CLASS_NAMES, "https://github.com/LibEMG/MyoDisCo")

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    manual_dir = emg_common.manual_dir(dl_manager)
    by_split = group_by_split(survey(manual_dir), self.builder_config.protocol)
    return {split: self._generate_examples(manual_dir, split, items)
            for split, items in by_split.items()}

  def _generate_examples(self, manual_dir: epath.Path, split: str,
                         recordings: list[Recording]) -> Iterator[tuple[str, dict]]:
    config = self.builder_config
    wanted = {r.path: r for r in recordings}
    done, short = 0, 0
    for member in iter_corpus(manual_dir, wanted.__contains__):
      recording = wanted[member.path]
      emg_ct = myo_common.preprocess(parse_csv(member.data, member.source), member.source, config)
      written = 0
      for index, window in myo_common.windows(emg_ct, config):
        written += 1
        yield f"{recording.key}_{index}", {
            "emg": window, "label": recording.label, "subject": recording.subject,
            "session": recording.session, "repetition": recording.repetition}
      done += 1
      short += written == 0
    if done != len(wanted):
      raise emg_common.CorpusError(f"manual_dir {manual_dir}: {len(wanted) - done} file(s) of "
                                   f"split {split} disappeared while building")
    log = _LOG.warning if short else _LOG.info
    log("split %s: %d file(s) read, %d shorter than one window (%d samples) gave no window",
        split, done, short, config.window)
