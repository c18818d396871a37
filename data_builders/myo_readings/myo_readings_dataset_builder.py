"""TFDS builder for the "myo-readings-dataset" (Frančič, 2021): 8-ch Myo, 8 wrist gestures.

Reads `myo-readings-dataset.tar.xz` (or its unpacked folder) from `manual_dir` as a stream, parses
each one-minute `<id>-<session>/<k>.txt` file (rows `e1,...,e8,label`), drops the few malformed
lines and splits the recording there, filters every piece zero-phase and cuts 1 s windows. See
README.md for every choice.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import lzma
import re
import tarfile
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from data_builders import emg_common, myo_common

logger = logging.getLogger(__name__)

ARCHIVE_NAME = "myo-readings-dataset.tar.xz"
ROOT = "myo-readings-dataset"
HAND_DIRS = {"_readings_right_hand": "right", "_readings_left_hand": "left"}
CLASS_NAMES = ("hibernation", "flexion", "extension", "radial_deviation", "ulnar_deviation",
               "pronation", "supination", "fist")
HIBERNATION = 0
NUM_FIELDS = myo_common.NUM_CHANNELS + 1      # e1..e8, label
MAX_BAD_LINES = 10                            # more malformed lines than this fail the file
VALIDATION_PERCENT = TEST_PERCENT = 15
SESSION_RE = re.compile(r"(\d+)-(\d+)")
FILE_NAMES = tuple(f"{k}.txt" for k in range(len(CLASS_NAMES)))
_FIELD_RE = re.compile(rb"-?\d{1,9}")
_ALLOWED = np.zeros(256, dtype=bool)          # bytes of a well-formed file after normalising
_ALLOWED[list(b"0123456789-,\n")] = True
_ARCHIVE_ERRORS = (tarfile.TarError, lzma.LZMAError, EOFError, OSError)


@dataclasses.dataclass(frozen=True)
class Session:
  """One recording session folder, e.g. `_readings_left_hand/6666-1`."""

  hand: str          # "right" or "left"
  participant: str   # the folder's id as written, e.g. "6666"
  session: int       # the folder's session number (0 is allowed)
  folder: str        # path below the corpus root

  @property
  def subject(self) -> int:
    return int(self.participant)

  def split(self, all_windows: bool) -> str:
    """The split of this session's participant, from a stable hash of its id (not of the list)."""
    person = str(self.subject)
    if all_windows:
      return myo_common.all_split(person)
    return emg_common.hashed_subject_split(person, validation_percent=VALIDATION_PERCENT,
                                           test_percent=TEST_PERCENT)


@dataclasses.dataclass(frozen=True)
class Recording:
  """The well-formed rows of one file; `lines` are their 1-based line numbers in the file."""

  rows: np.ndarray                  # int64 [T, 9]: samples e1..e8, then the label
  lines: np.ndarray                 # int64 [T]
  dropped: tuple[int, ...]          # 1-based numbers of the dropped malformed lines

  def pieces(self) -> list[tuple[int, int]]:
    """(start, stop) row ranges between dropped lines: each is recorded without a gap."""
    gaps = np.flatnonzero(np.diff(self.lines) > 1) + 1
    bounds = [0, *gaps.tolist(), len(self.lines)]
    return list(zip(bounds[:-1], bounds[1:]))


# ----------------------------------------------------------------------------- layout
def list_sessions(manual_dir: epath.Path | str) -> list[Session]:
  """Lists the session folders in `manual_dir` (the archive or its unpacked folder).

  Raises:
    emg_common.CorpusError: `manual_dir` is missing or holds neither layout; the archive is
      truncated; a hand folder is missing; a session folder is empty, lacks one of 0.txt..7.txt
      or holds anything else; a folder is not named `<id>-<session>`; an id/session appears twice.
  """
  files, dirs, where = _entries(epath.Path(manual_dir))
  hand_seen: set[str] = set()
  contents: dict[str, set[str]] = {}
  for path in sorted(dirs | files):
    parts = path.split("/")
    if parts[0] not in HAND_DIRS or any(p.startswith(".") for p in parts):
      continue   # README.md, LICENSE, curated.txt, hidden files
    hand_seen.add(parts[0])
    if len(parts) == 1:
      continue
    folder = "/".join(parts[:2])
    if path in files and len(parts) == 2:
      raise emg_common.CorpusError(f"{where}: unexpected file {path} (files belong in "
                                   f"<id>-<session> folders)")
    if not SESSION_RE.fullmatch(parts[1]):
      raise emg_common.CorpusError(f"{where}: folder {folder} is not named <id>-<session>")
    names = contents.setdefault(folder, set())
    if len(parts) == 3 and path in files:
      names.add(parts[2])
    elif len(parts) > 2:
      raise emg_common.CorpusError(f"{where}: unexpected entry {path} inside session {folder}")
  missing_hands = [hand for hand in HAND_DIRS if hand not in hand_seen]
  if len(missing_hands) == len(HAND_DIRS):
    raise emg_common.CorpusError(
        f"{where}: no {' or '.join(HAND_DIRS)} folder; put {ARCHIVE_NAME} or its unpacked "
        f"{ROOT}/ folder in manual_dir")
  if missing_hands:
    raise emg_common.CorpusError(f"{where}: folder {missing_hands[0]}/ is missing")
  sessions = []
  owner: dict[tuple[int, int], str] = {}
  for folder, names in sorted(contents.items()):
    if not names:
      raise emg_common.CorpusError(f"{where}: session folder {folder} is empty")
    lacking = [name for name in FILE_NAMES if name not in names]
    extra = sorted(names - set(FILE_NAMES))
    if extra:
      raise emg_common.CorpusError(f"{where}: session folder {folder} holds unexpected file(s) "
                                   f"{', '.join(extra)}; expected {FILE_NAMES[0]}.."
                                   f"{FILE_NAMES[-1]}")
    if lacking:
      raise emg_common.CorpusError(f"{where}: session folder {folder} lacks "
                                   f"{', '.join(lacking)}")
    hand_dir, name = folder.split("/")
    participant, number = SESSION_RE.fullmatch(name).groups()
    session = Session(HAND_DIRS[hand_dir], participant, int(number), folder)
    key = (session.subject, session.session)
    if key in owner:
      raise emg_common.CorpusError(f"{where}: {folder} and {owner[key]} are the same participant "
                                   f"and session")
    owner[key] = folder
    sessions.append(session)
  return sorted(sessions, key=lambda s: (s.subject, s.session))


def _entries(manual_dir: epath.Path) -> tuple[set[str], set[str], str]:
  """(files, folders) below the corpus root, and what to call their location in messages.

  Resolves the layout as `myo_common.iter_members` does: the archive, else `ROOT/`, else
  `manual_dir` itself. Only names are read (folders are needed to see an empty session).
  """
  if not manual_dir.is_dir():
    raise emg_common.CorpusError(f"manual_dir {manual_dir} does not exist; put {ARCHIVE_NAME} "
                                 f"or its unpacked {ROOT}/ folder there")
  archive = manual_dir / ARCHIVE_NAME
  files: set[str] = set()
  dirs: set[str] = set()
  if archive.exists():
    prefix = ROOT + "/"
    try:
      with archive.open("rb") as raw, tarfile.open(fileobj=raw, mode="r|xz") as tar:
        for info in tar:
          name = info.name.rstrip("/")
          if not name.startswith(prefix):
            continue
          if info.isdir():
            dirs.add(name[len(prefix):])
          elif info.isfile():
            files.add(name[len(prefix):])
    except _ARCHIVE_ERRORS as error:
      raise emg_common.CorpusError(f"{archive}: truncated or corrupt archive "
                                   f"({type(error).__name__}: {error})") from error
    return files, dirs, str(archive)
  folder = _unpacked_folder(manual_dir)
  for parent, subdirs, names in folder.walk():
    below = parent.relative_to(folder).as_posix()
    below = "" if below == "." else below + "/"
    dirs.update(below + name for name in subdirs)
    files.update(below + name for name in names)
  return files, dirs, str(folder)


def _unpacked_folder(manual_dir: epath.Path) -> epath.Path:
  return manual_dir / ROOT if (manual_dir / ROOT).is_dir() else manual_dir


# ----------------------------------------------------------------------------- parsing
def parse_recording(data: bytes, source: str, gesture: int) -> Recording:
  """Parses one `<gesture>.txt` file; malformed lines are dropped and listed, not guessed at.

  Line ends may be LF, CRLF or a lone CR; ", " counts as ",". A well-formed line is exactly nine
  comma-separated integers.

  Raises:
    emg_common.CorpusError: an empty file, more than MAX_BAD_LINES malformed lines (e.g. a
      wrong column count or non-numeric values throughout), a sample outside [-128, 127], a
      label outside 0..7, or a label other than 0 and `gesture`; the message names `source`.
  """
  text = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b", ", b",")
  if text.endswith(b"\n"):
    text = text[:-1]
  if not text:
    raise emg_common.CorpusError(f"{source}: empty file")
  rows = _fast_rows(text)
  if rows is not None:
    recording = Recording(rows, np.arange(1, len(rows) + 1), ())
  else:
    recording = _slow_rows(text, source)
  _check_rows(recording, source, gesture)
  return recording


def _fast_rows(text: bytes) -> np.ndarray | None:
  """[T, 9] when every line is nine integers (checked without a Python loop), else None."""
  buf = np.frombuffer(text, dtype=np.uint8)
  if not _ALLOWED[buf].all():
    return None
  ends = np.append(np.flatnonzero(buf == ord("\n")), buf.size)
  commas = np.flatnonzero(buf == ord(","))
  if (np.diff(np.searchsorted(commas, ends), prepend=0) != NUM_FIELDS - 1).any():
    return None
  try:   # raises on an empty field or one like "2-2"
    values = np.fromstring(text.replace(b"\n", b","), dtype=np.int64, sep=",")
  except ValueError:
    return None
  if values.size != NUM_FIELDS * ends.size:
    return None
  return values.reshape(ends.size, NUM_FIELDS)


def _slow_rows(text: bytes, source: str) -> Recording:
  """Line by line: keeps the well-formed lines, drops the rest (at most MAX_BAD_LINES)."""
  rows, lines, dropped, problems = [], [], [], []
  for number, line in enumerate(text.split(b"\n"), start=1):
    fields = line.split(b",")
    bad = next((f for f in fields if not _FIELD_RE.fullmatch(f)), None)
    if len(fields) == NUM_FIELDS and bad is None:
      rows.append([int(f) for f in fields])
      lines.append(number)
      continue
    dropped.append(number)
    if len(problems) < 3:
      what = (f"{len(fields)} fields, expected {NUM_FIELDS}" if len(fields) != NUM_FIELDS
              else f"field {bad.decode('latin-1')!r} is not an integer")
      problems.append(f"line {number} ({what}): {line[:60].decode('latin-1')!r}")
  total = len(dropped) + len(rows)
  if len(dropped) > MAX_BAD_LINES or not rows:
    raise emg_common.CorpusError(
        f"{source}: {len(dropped)} of {total} lines are not {NUM_FIELDS} comma-separated "
        f"integers (more than {MAX_BAD_LINES} malformed lines); first: {'; '.join(problems)}")
  return Recording(np.asarray(rows, dtype=np.int64), np.asarray(lines, dtype=np.int64),
                   tuple(dropped))


def _check_rows(recording: Recording, source: str, gesture: int) -> None:
  samples, labels = recording.rows[:, :-1], recording.rows[:, -1]
  lo, hi = myo_common.SAMPLE_RANGE
  outside = (samples < lo) | (samples > hi)
  if outside.any():
    row, col = (int(i) for i in np.argwhere(outside)[0])
    raise emg_common.CorpusError(
        f"{source}: sample {samples[row, col]} on line {recording.lines[row]} (channel "
        f"e{col + 1}) is outside the Myo's range [{lo}, {hi}]")
  bad = (labels < 0) | (labels >= len(CLASS_NAMES))
  if bad.any():
    row = int(np.flatnonzero(bad)[0])
    raise emg_common.CorpusError(f"{source}: label {labels[row]} on line {recording.lines[row]} "
                                 f"is outside 0..{len(CLASS_NAMES) - 1}")
  foreign = (labels != HIBERNATION) & (labels != gesture)
  if foreign.any():
    row = int(np.flatnonzero(foreign)[0])
    raise emg_common.CorpusError(
        f"{source}: label {labels[row]} on line {recording.lines[row]} does not belong in "
        f"{gesture}.txt (only {HIBERNATION} and {gesture})")


# ----------------------------------------------------------------------------- windows
def recording_examples(recording: Recording, session: Session, gesture: int, source: str,
                       config: myo_common.MyoConfig) -> Iterator[tuple[str, dict]]:
  """The windows of one parsed file under `config`; none spans a dropped line.

  Labeled configs keep runs whose label is the file's own (`k.txt`: gesture k; `0.txt`: rest);
  `all` keeps every window, labeled when inside one run, else `UNLABELED`.
  """
  labels = recording.rows[:, -1]
  runs = emg_common.constant_runs(labels)
  run_of = np.empty(labels.size, dtype=np.int64)
  repetition: list[int] = []
  occurrences: collections.Counter = collections.Counter()
  for run, (start, stop, cls) in enumerate(runs):
    run_of[start:stop] = run
    occurrences[cls] += 1
    repetition.append(occurrences[cls])
  ids = {"subject": session.subject, "session": session.session}
  prefix = f"{session.subject}_{session.session}_{gesture}"
  for start, stop in recording.pieces():
    if stop - start < config.window:
      continue   # no window fits; too short to filter, too
    where = f"{source} (lines {recording.lines[start]}-{recording.lines[stop - 1]})"
    emg_ct = myo_common.preprocess(recording.rows[start:stop, :-1], where, config)
    if config.all_windows:
      for index, window in myo_common.windows(emg_ct, config):
        first = start + index * config.stride
        run = run_of[first]
        labeled = run == run_of[first + config.window - 1]
        yield f"{prefix}_{recording.lines[first]:05d}", {
            "emg": window, "label": runs[run][2] if labeled else len(CLASS_NAMES),
            "repetition": repetition[run] if labeled else 0, **ids}
      continue
    for run in range(run_of[start], run_of[stop - 1] + 1):
      run_start, run_stop, cls = runs[run]
      if cls != gesture:
        continue
      begin, end = max(run_start, start) - start, min(run_stop, stop) - start
      for index, window in myo_common.windows(emg_ct, config, begin, end):
        first = start + begin + index * config.stride
        yield f"{prefix}_{recording.lines[first]:05d}", {
            "emg": window, "label": cls, "repetition": repetition[run], **ids}


class Builder(tfds.core.GeneratorBasedBuilder):
  """myo-readings-dataset: 8-channel Myo windows, 8 wrist gestures, participant-disjoint splits."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "200 Hz, 20-90 Hz band-pass + 50 Hz notch; malformed lines dropped."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Pack https://github.com/aljazfrancic/myo-readings-dataset (commit 2630b1dd) as "
      f"{ARCHIVE_NAME} with top folder {ROOT}/, or put that unpacked folder, in manual_dir.")
  BUILDER_CONFIGS = [
      myo_common.labeled_config(
          "default", "Windows inside runs of one gesture (k.txt: gesture k only; 0.txt: "
          "hibernation); participants split 70/15/15 by a hash of their id.",
          protocol="participant_hash"),
      myo_common.all_config(),
  ]
  DEFAULT_BUILDER_CONFIG_NAME = "default"

  def _info(self) -> tfds.core.DatasetInfo:
    return myo_common.info(self, CLASS_NAMES, "https://github.com/aljazfrancic/myo-readings-dataset")

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    manual_dir = emg_common.manual_dir(dl_manager)
    by_split: dict[str, list[Session]] = {}
    for session in list_sessions(manual_dir):
      by_split.setdefault(session.split(self.builder_config.all_windows), []).append(session)
    return {split: self._generate_examples(split, sessions, manual_dir)
            for split, sessions in sorted(by_split.items())}

  def _generate_examples(self, split: str, sessions: list[Session],
                         manual_dir: epath.Path) -> Iterator[tuple[str, dict]]:
    config = self.builder_config
    wanted = {f"{s.folder}/{k}.txt": (s, k) for s in sessions for k in range(len(CLASS_NAMES))}
    seen: set[str] = set()
    dropped, files_with_drops = 0, 0
    for member in myo_common.iter_members(manual_dir, (ARCHIVE_NAME,), ROOT, wanted.__contains__):
      session, gesture = wanted[member.path]
      seen.add(member.path)
      recording = parse_recording(member.data, member.source, gesture)
      if recording.dropped:
        dropped += len(recording.dropped)
        files_with_drops += 1
        logger.warning("%s: dropped malformed line(s) %s; the recording is split there",
                       member.source, ", ".join(map(str, recording.dropped)))
      yield from recording_examples(recording, session, gesture, member.source, config)
    if len(seen) != len(wanted):
      raise emg_common.CorpusError(f"{manual_dir}: {sorted(set(wanted) - seen)[0]} was listed "
                                   "but could not be read")
    logger.log(logging.WARNING if dropped else logging.INFO,
               "myo_readings/%s %s: dropped %d malformed line(s) in %d file(s) of %d",
               config.name, split, dropped, files_with_drops, len(wanted))
