"""TFDS builder for CIILData (LibEMG): 8-channel Myo sEMG, 5 hand and wrist classes, 32 subject ids.

Two groups of recordings: `ElectrodeShift` (21 people; a training session, then four trials after
the armband was moved) and `MinimalTrainingData` (11 people; 1 s of training per class, then seven
test trials). Every CSV is one performance of one class. Members are streamed from
`CIILData.tar.xz` (or read from its unpacked folder), each file is filtered whole and cut into
windows. See README.md for every choice.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import json
import logging
import re
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from data_builders import emg_common, myo_common

log = logging.getLogger(__name__)

ARCHIVE_NAMES = ("CIILData.tar.xz",)
ROOT = "CIILData"
HOMEPAGE = "https://github.com/LibEMG/CIILData"
CLASS_NAMES = ("hand_close", "hand_open", "no_motion", "wrist_extension", "wrist_flexion")
ELECTRODE_SHIFT, MINIMAL_TRAINING = "ElectrodeShift", "MinimalTrainingData"
GROUPS = (ELECTRODE_SHIFT, MINIMAL_TRAINING)
MINIMAL_SUBJECT_OFFSET = 100   # MinimalTrainingData subject k -> subject id 100 + k
_CSV_RE = {
    ELECTRODE_SHIFT: re.compile(r"ElectrodeShift/subject(\d+)/(training|trial_(\d+))/"
                                r"R_(\d+)_C_(\d+)\.csv"),
    MINIMAL_TRAINING: re.compile(r"MinimalTrainingData/subject(\d+)/(train|test/trial_(\d+))/"
                                 r"R_(\d+)_C_(\d+)\.csv"),
}
_GAME_LOG_RE = re.compile(r"(?:.*/)?game_(?:data|stats)[^/]*\.txt")
_FILE_RE = re.compile(r"R_(\d+)_C_(\d+)\.csv")
# Sessions every person of a group must have: 0 = training/train, t + 1 = trial folder t.
# ElectrodeShift's trial_0 (two people only) is optional.
REQUIRED_SESSIONS = {ELECTRODE_SHIFT: (0, 2, 3, 4, 5), MINIMAL_TRAINING: (0, 1, 2, 3, 4, 5, 6, 7)}
ELECTRODE_SHIFT_TRIAL_0 = 1   # session id of ElectrodeShift/subject<k>/trial_0


@dataclasses.dataclass(frozen=True, eq=False)
class Recording:
  """One CSV: one performance (`rep`) of one class, as int8 samples [T, 8]."""

  group: str
  folder_subject: int
  session: int
  rep: int
  cls: int
  source: str
  emg_tc: np.ndarray

  @property
  def subject(self) -> int:
    """Corpus-wide subject id: k for ElectrodeShift/subject<k>, 100 + k for the other group."""
    offset = MINIMAL_SUBJECT_OFFSET if self.group == MINIMAL_TRAINING else 0
    return offset + self.folder_subject

  @property
  def person(self) -> str:
    """The person's folder in the archive, the id that `all` splits on."""
    return f"{ROOT}/{self.group}/subject{self.folder_subject}"


def session_folder(group: str, session: int) -> str:
  """The folder name of a session id: training/train, trial_<t> or test/trial_<t>."""
  if session == 0:
    return "training" if group == ELECTRODE_SHIFT else "train"
  return f"trial_{session - 1}" if group == ELECTRODE_SHIFT else f"test/trial_{session - 1}"


def parse_csv(data: bytes, source: str) -> np.ndarray:
  """Parses one headerless CSV of 8 integer columns into int8 samples [T, 8].

  Raises:
    emg_common.CorpusError: not ASCII text, no rows, a line without exactly 8 fields, a value
      that is not an integer, or one outside the Myo's [-128, 127]; the message names `source`
      and the line.
  """
  try:
    text = data.decode("ascii")
  except UnicodeDecodeError as error:
    raise emg_common.CorpusError(f"{source}: not ASCII text (byte {error.start})") from error
  lines = text.split("\n")
  if lines[-1] == "":
    lines.pop()
  if not lines:
    raise emg_common.CorpusError(f"{source}: empty file, no samples")
  for number, line in enumerate(lines, start=1):
    fields = line.count(",") + 1
    if fields != myo_common.NUM_CHANNELS:
      raise emg_common.CorpusError(f"{source}: line {number} has {fields} fields, expected "
                                   f"{myo_common.NUM_CHANNELS} ({line.strip()[:60]!r})")
  try:
    values = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.int64, ndmin=2)
  except ValueError as error:
    raise emg_common.CorpusError(_bad_value(lines, source)) from error
  if values.shape[0] != len(lines):   # loadtxt skips blank lines; none may be left out
    raise emg_common.CorpusError(f"{source}: {len(lines) - values.shape[0]} lines hold no "
                                 "samples")
  return myo_common.check_samples(values, source).astype(np.int8)


def _bad_value(lines: list[str], source: str) -> str:
  """Names the first line and field that is not an integer."""
  for number, line in enumerate(lines, start=1):
    for column, field in enumerate(line.strip().split(","), start=1):
      try:
        int(field)
      except ValueError:
        return f"{source}: line {number}, field {column}: {field.strip()!r} is not an integer"
  return f"{source}: unreadable values"


def check_metadata(data: bytes, source: str) -> None:
  """Checks a session's metadata.json names the classes in the builder's order.

  Raises:
    emg_common.CorpusError: not JSON, or an entry whose class name, class index or rep index
      disagrees with CLASS_NAMES or with its file name.
  """
  try:
    entries = json.loads(data.decode("utf-8"))
  except (UnicodeDecodeError, json.JSONDecodeError) as error:
    raise emg_common.CorpusError(f"{source}: not a JSON file ({error})") from error
  if not isinstance(entries, dict):
    raise emg_common.CorpusError(f"{source}: expected a JSON object")
  for name, entry in entries.items():
    if not isinstance(entry, dict) or "class_idx" not in entry:
      continue   # the recorder's settings: "continuous", "randomize", "gifs"
    cls, class_name = entry.get("class_idx"), str(entry.get("class_name", ""))
    if cls not in range(len(CLASS_NAMES)) or class_name.lower() != CLASS_NAMES[cls]:
      raise emg_common.CorpusError(f"{source}: {name} has class {cls} {class_name!r}; the "
                                   f"classes must be {', '.join(CLASS_NAMES)} in this order")
    match = _FILE_RE.fullmatch(name.rsplit("/", 1)[-1])
    if match and (int(match[1]), int(match[2])) != (entry.get("rep_idx"), cls):
      raise emg_common.CorpusError(f"{source}: {name} is listed as rep {entry.get('rep_idx')}, "
                                   f"class {cls}, unlike its file name")


@dataclasses.dataclass
class Scan:
  """What one pass over the corpus found: the recordings and the files left out."""

  recordings: list[Recording]
  game_logs: int = 0
  other_files: int = 0


def scan(manual_dir: epath.Path | str, groups: tuple[str, ...]) -> Scan:
  """Reads every CSV of `groups` (checking each session's metadata.json) in one pass.

  Game logs (`game_data*.txt`, `game_stats*.txt`) and other non-CSV files are counted, not read.

  Raises:
    emg_common.CorpusError: a missing or unreadable corpus, a CSV outside the layout or with
      bad content, a class outside 0..4, a file found twice, a group without files, or a person
      lacking one of the sessions in REQUIRED_SESSIONS.
  """
  found = Scan([])

  def keep(path: str) -> bool:
    if path.split("/", 1)[0] not in groups:
      return False
    if path.endswith(".csv") or path.rsplit("/", 1)[-1] == "metadata.json":
      return True
    if _GAME_LOG_RE.fullmatch(path):
      found.game_logs += 1
    else:
      found.other_files += 1
    return False

  seen: set[str] = set()
  for member in myo_common.iter_members(manual_dir, ARCHIVE_NAMES, ROOT, keep):
    if member.path in seen:
      raise emg_common.CorpusError(f"{member.source}: found twice in {manual_dir}")
    seen.add(member.path)
    if member.path.endswith("metadata.json"):
      check_metadata(member.data, member.source)
      continue
    group = member.path.split("/", 1)[0]
    match = _CSV_RE[group].fullmatch(member.path)
    if not match:
      raise emg_common.CorpusError(
          f"{member.source}: a CSV outside the layout {group}/subject<k>/"
          f"{'{training,trial_<t>}' if group == ELECTRODE_SHIFT else '{train,test/trial_<t>}'}"
          "/R_<rep>_C_<class>.csv")
    subject, _, trial, rep, cls = match.groups()
    if int(cls) >= len(CLASS_NAMES):
      raise emg_common.CorpusError(f"{member.source}: class {cls} is not one of 0..4 "
                                   f"({', '.join(CLASS_NAMES)})")
    session = 0 if trial is None else int(trial) + 1
    found.recordings.append(Recording(group, int(subject), session, int(rep), int(cls),
                                      member.source, parse_csv(member.data, member.source)))
  _check_layout(found.recordings, groups, manual_dir)
  found.recordings.sort(key=lambda r: (r.subject, r.session, r.rep, r.cls))
  return found


def _check_layout(recordings: list[Recording], groups: tuple[str, ...],
                  manual_dir: epath.Path | str) -> None:
  sessions: dict[tuple[str, int], set[int]] = collections.defaultdict(set)
  for recording in recordings:
    sessions[recording.group, recording.folder_subject].add(recording.session)
  for group in groups:
    people = sorted(k for g, k in sessions if g == group)
    if not people:
      raise emg_common.CorpusError(f"manual_dir {manual_dir}: no {ROOT}/{group}/subject<k>/.../"
                                   "R_<rep>_C_<class>.csv file found (missing or empty folder)")
    for k in people:
      for session in REQUIRED_SESSIONS[group]:
        if session not in sessions[group, k]:
          raise emg_common.CorpusError(
              f"manual_dir {manual_dir}: {ROOT}/{group}/subject{k}/"
              f"{session_folder(group, session)}/ is missing or holds no R_<rep>_C_<class>.csv")


def electrode_shift_split(recording: Recording, last_rep: dict[tuple[int, int], int]) -> str | None:
  """training -> train, but each person's last rep of each class -> validation; trials -> test.

  trial_0 (two people only, outside the published protocol) -> None, not written.
  """
  if recording.session == 0:
    last = last_rep[recording.subject, recording.cls]
    return "validation" if recording.rep == last else "train"
  return None if recording.session == ELECTRODE_SHIFT_TRIAL_0 else "test"


def minimal_training_split(recording: Recording) -> str:
  """train -> train, test/trial_0 -> validation, test/trial_1..6 -> test."""
  return {0: "train", 1: "validation"}.get(recording.session, "test")


class Builder(tfds.core.GeneratorBasedBuilder):
  """CIILData: Myo windows of 5 classes; electrode-shift and minimal-training protocols."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "200 Hz Myo units, 20-90 Hz band-pass + 50 Hz notch per file."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      f"Clone {HOMEPAGE} and put its CIILData/ folder (ElectrodeShift/, MinimalTrainingData/), "
      "or that folder packed as CIILData.tar.xz (tar -cJf CIILData.tar.xz CIILData), in "
      "manual_dir.")
  BUILDER_CONFIGS = [
      myo_common.labeled_config(
          "electrode_shift", "ElectrodeShift, within person across an electrode shift: training "
          "session -> train except each person's last rep of each class -> validation; the four "
          "trials after the shift -> test.", protocol="electrode_shift"),
      myo_common.labeled_config(
          "minimal_training", "MinimalTrainingData, within person: 1 s per class (train) -> "
          "train; test/trial_0 -> validation; test/trial_1..6 -> test.",
          protocol="minimal_training"),
      myo_common.all_config(),
  ]
  DEFAULT_BUILDER_CONFIG_NAME = "electrode_shift"

  def _info(self) -> tfds.core.DatasetInfo:
    return myo_common.info(self, CLASS_NAMES, HOMEPAGE)

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    config = self.builder_config
    groups = {"electrode_shift": (ELECTRODE_SHIFT,),
              "minimal_training": (MINIMAL_TRAINING,)}.get(config.protocol, GROUPS)
    found = scan(emg_common.manual_dir(dl_manager), groups)
    last_rep: dict[tuple[int, int], int] = {}
    for r in found.recordings:
      if r.session == 0:
        last_rep[r.subject, r.cls] = max(last_rep.get((r.subject, r.cls), -1), r.rep)
    by_split: dict[str, list[Recording]] = {}
    not_in_protocol = 0
    for recording in found.recordings:
      if config.all_windows:
        split = myo_common.all_split(recording.person)
      elif config.protocol == "electrode_shift":
        split = electrode_shift_split(recording, last_rep)
      else:
        split = minimal_training_split(recording)
      if split is None:
        not_in_protocol += 1
        continue
      by_split.setdefault(split, []).append(recording)
    skipped = (f"skipped {found.game_logs} game-log files, {found.other_files} other non-CSV "
               f"files, {not_in_protocol} ElectrodeShift trial_0 CSV files")
    return {split: self._generate_examples(split, items, skipped)
            for split, items in sorted(by_split.items())}

  def _generate_examples(self, split: str, recordings: list[Recording],
                         skipped: str) -> Iterator[tuple[str, dict]]:
    config = self.builder_config
    written = too_short = 0
    for recording in recordings:
      emg_ct = myo_common.preprocess(recording.emg_tc, recording.source, config)
      count = 0
      for index, window in myo_common.windows(emg_ct, config):
        key = (f"{recording.subject:03d}_{recording.session}_{recording.rep}_{recording.cls}_"
               f"{index:02d}")
        yield key, {"emg": window, "label": recording.cls, "subject": recording.subject,
                    "session": recording.session, "repetition": recording.rep}
        count += 1
      written += count
      too_short += count == 0
    log.warning("ciil/%s %s: %d windows from %d CSV files; %d files shorter than %d samples "
                "gave no window; %s", config.name, split, written, len(recordings), too_short,
                config.window, skipped)
