"""TFDS builder for Côté-Allard's Myo Armband Dataset: 8-channel Myo at 200 Hz, 7 hand gestures.

Files `<group>/<Female|Male><n>/<training0|Test0|Test1>/classe_<i>.dat` (headerless little-endian
int16, interleaved [T, 8]); file i holds one performance of gesture i % 7 in cycle i // 7. The
groups are `PreTrainingDataset/` (22 people, training0 only) and `EvaluationDataset/` (18 other
people, training0 + Test0 + Test1). See README.md for every choice.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Iterator

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from data_builders import emg_common, myo_common

logger = logging.getLogger(__name__)

ARCHIVE_NAMES = ("MyoArmbandDataset-PreTraining.tar.xz", "MyoArmbandDataset.tar.xz")
ROOT = "MyoArmbandDataset"
HOMEPAGE = "https://github.com/UlysseCoteAllard/MyoArmbandDataset"
CLASS_NAMES = ("neutral", "radial_deviation", "wrist_flexion", "ulnar_deviation",
               "wrist_extension", "hand_close", "hand_open")
NUM_CYCLES = 4
NUM_FILES = len(CLASS_NAMES) * NUM_CYCLES          # classe_0.dat .. classe_27.dat per folder
FRAME_BYTES = myo_common.NUM_CHANNELS * 2          # one int16 sample of each channel
# Subject id = group offset + sex offset + the number in the person's folder name.
GROUP_OFFSETS = {"PreTrainingDataset": 0, "EvaluationDataset": 100}
SEX_OFFSETS = {"Female": 0, "Male": 50}
PERSONS_PER_SEX = 50
SESSIONS = {"training0": 0, "test0": 1, "test1": 2}   # folder name (any case) -> session id
SESSION_FOLDERS = ("training0", "Test0", "Test1")     # the publisher's spelling, for messages
EVALUATION_GROUP = "EvaluationDataset"
_PERSON_RE = re.compile(r"^(Female|Male)(\d+)$")
_FILE_RE = re.compile(r"^classe_(\d+)\.dat$")
_EXPECTED = ("<PreTrainingDataset|EvaluationDataset>/<Female|Male><n>/<training0|Test0|Test1>/"
             f"classe_<0..{NUM_FILES - 1}>.dat")


@dataclasses.dataclass(frozen=True)
class Recording:
  """One `classe_<i>.dat` file: one performance of one gesture by one person."""

  path: str          # below the corpus root, e.g. "PreTrainingDataset/Male7/training0/classe_3.dat"
  source: str        # names the file in messages (archive member or file path)
  group: str
  person: str        # folder name, e.g. "Male7"
  session: int       # 0 = training0, 1 = Test0, 2 = Test1
  index: int         # i of classe_<i>.dat

  @property
  def person_id(self) -> str:
    return f"{self.group}/{self.person}"

  @property
  def subject(self) -> int:
    sex, number = _PERSON_RE.match(self.person).groups()
    return GROUP_OFFSETS[self.group] + SEX_OFFSETS[sex] + int(number)

  @property
  def label(self) -> int:
    return self.index % len(CLASS_NAMES)

  @property
  def cycle(self) -> int:
    return self.index // len(CLASS_NAMES)


def _wanted(path: str) -> bool:
  """Files the builder looks at: every `.dat` below a group, and each person's experiment.csv."""
  group, _, rest = path.partition("/")
  if group not in GROUP_OFFSETS or not rest:
    return False
  return path.endswith(".dat") or (rest.count("/") == 1 and rest.endswith("/experiment.csv"))


def iter_corpus(manual_dir: epath.Path | str,
                keep: Callable[[str], bool] = _wanted) -> Iterator[myo_common.Member]:
  """Yields the corpus files below the root that pass `keep` (paths start with the group).

  `manual_dir` holds the archive (streamed by `myo_common.iter_members`), or the unpacked
  `MyoArmbandDataset/` folder (with one group or both), or is that folder, or holds the group
  folders, or is one group folder itself. Unpacked files come sorted by path.

  Raises:
    emg_common.CorpusError: `manual_dir` is missing or holds none of these, or the archive is
      truncated or corrupt.
  """
  manual_dir = epath.Path(manual_dir)
  if any((manual_dir / name).exists() for name in ARCHIVE_NAMES) or not manual_dir.is_dir():
    yield from myo_common.iter_members(manual_dir, ARCHIVE_NAMES, ROOT, keep)
    return
  if manual_dir.name in GROUP_OFFSETS and not (manual_dir / ROOT).is_dir():
    folder, prefix = manual_dir, manual_dir.name + "/"    # manual_dir is one group's folder
  else:
    folder = manual_dir / ROOT if (manual_dir / ROOT).is_dir() else manual_dir
    prefix = ""
  found = False
  for below in myo_common.files_below(folder):
    relative = prefix + below
    if keep(relative):
      found = True
      path = folder / below
      yield myo_common.Member(relative, path.read_bytes(), path.as_posix())
  if not found:
    raise emg_common.CorpusError(
        f"manual_dir {manual_dir} holds neither {' nor '.join(ARCHIVE_NAMES)} nor the unpacked "
        f"{ROOT}/ folder (or its PreTrainingDataset/, EvaluationDataset/ folders) with "
        "classe_<i>.dat files")


def _parse_path(member: myo_common.Member) -> Recording:
  """Reads group, person, session and file index from a `.dat` member's path."""
  parts = member.path.split("/")
  person = _PERSON_RE.match(parts[1]) if len(parts) == 4 else None
  session = SESSIONS.get(parts[2].lower()) if len(parts) == 4 else None
  index = _FILE_RE.match(parts[3]) if len(parts) == 4 else None
  if person is None or session is None or index is None or int(index[1]) >= NUM_FILES:
    raise emg_common.CorpusError(f"{member.source}: unexpected file; every .dat file must be "
                                 f"{_EXPECTED}")
  if int(person[2]) >= PERSONS_PER_SEX:
    raise emg_common.CorpusError(f"{member.source}: person number {person[2]} is not below "
                                 f"{PERSONS_PER_SEX}, so it has no subject id")
  return Recording(member.path, member.source, parts[0], parts[1], session, int(index[1]))


def find_recordings(manual_dir: epath.Path | str) -> list[Recording]:
  """Lists and checks every recording in `manual_dir`, sorted by (group, person, session, file).

  Raises:
    emg_common.CorpusError: no recording; a `.dat` file outside the layout; two files for one
      (person, session, i); a person without training0, an EvaluationDataset person without
      Test0 or Test1, or a session folder that lacks some of classe_0..27.dat.
  """
  recordings: dict[tuple[str, str, int, int], Recording] = {}
  persons: dict[tuple[str, str], str] = {}      # (group, person) -> where it was seen
  for member in iter_corpus(manual_dir):
    base = member.source[:len(member.source) - len(member.path)]
    group, person = member.path.split("/")[:2]
    persons.setdefault((group, person), base)
    if not member.path.endswith(".dat"):
      continue
    recording = _parse_path(member)
    key = (recording.group, recording.person, recording.session, recording.index)
    if key in recordings:
      raise emg_common.CorpusError(f"{member.source} and {recordings[key].source} are the same "
                                   "recording; keep one copy")
    recordings[key] = recording
  if not recordings:
    raise emg_common.CorpusError(f"manual_dir {manual_dir} holds no {_EXPECTED} file")
  found: dict[tuple[str, str], dict[int, set[int]]] = {}
  for group, person, session, index in recordings:
    found.setdefault((group, person), {}).setdefault(session, set()).add(index)
  for (group, person), base in sorted(persons.items()):
    sessions = found.get((group, person), {})
    needed = (0, 1, 2) if group == EVALUATION_GROUP else (0,)
    absent = [s for s in needed if s not in sessions]
    if absent:
      raise emg_common.CorpusError(
          f"{base}{group}/{person}: no {' or '.join(SESSION_FOLDERS[s] for s in absent)} folder "
          f"with classe_<i>.dat files (each {group} person has "
          f"{', '.join(SESSION_FOLDERS[s] for s in needed)})")
    for session, indices in sorted(sessions.items()):
      missing = sorted(set(range(NUM_FILES)) - indices)
      if missing:
        raise emg_common.CorpusError(
            f"{base}{group}/{person}/{SESSION_FOLDERS[session]}: missing "
            f"{', '.join(f'classe_{i}.dat' for i in missing)} (a session folder holds "
            f"classe_0.dat .. classe_{NUM_FILES - 1}.dat)")
  return [recordings[k] for k in sorted(recordings)]


def read_recording(data: bytes, source: str) -> np.ndarray:
  """Decodes one `.dat` file into int16 [T, 8].

  Raises:
    emg_common.CorpusError: empty file, or a size that is not a whole number of 16-byte frames.
  """
  if not data:
    raise emg_common.CorpusError(f"{source}: empty file (no samples)")
  if len(data) % FRAME_BYTES:
    raise emg_common.CorpusError(
        f"{source}: size {len(data)} bytes is not a multiple of {FRAME_BYTES} (one frame = "
        f"{myo_common.NUM_CHANNELS} channels x int16); the file is truncated or not this format")
  return np.frombuffer(data, dtype="<i2").reshape(-1, myo_common.NUM_CHANNELS)


def split_of(recording: Recording, protocol: str) -> str | None:
  """The split of a recording under a config's `protocol`, or None when the config omits it."""
  if protocol == "all":
    return myo_common.all_split(recording.person_id)
  if protocol == "cycle":
    if recording.session != 0:
      return None
    return ("train", "train", "validation", "test")[recording.cycle]
  if protocol == "protocol":   # only called for people that have Test0/Test1
    if recording.session != 0:
      return "test"
    return "validation" if recording.cycle == NUM_CYCLES - 1 else "train"
  raise ValueError(f"unknown protocol {protocol!r}")


class Builder(tfds.core.GeneratorBasedBuilder):
  """Myo Armband Dataset: 8-channel Myo windows, 7 gestures, within-person splits."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "20-90 Hz band-pass + 50 Hz notch at 200 Hz; windows in each file."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      f"Put {ARCHIVE_NAMES[0]} (a tar.xz of the publisher's {ROOT}/ folder), or the unpacked "
      f"{ROOT}/ folder, or its PreTrainingDataset/ and/or EvaluationDataset/ folders from "
      f"{HOMEPAGE} in manual_dir.")
  BUILDER_CONFIGS = [
      myo_common.labeled_config(
          "cycle", "Within-person, training0 of every person present: cycles 0-1 train, "
          "cycle 2 validation, cycle 3 test (repetition = cycle + 1).", protocol="cycle"),
      myo_common.labeled_config(
          "protocol", "The publisher's protocol, people with Test0/Test1 folders only: "
          "training0 cycles 0-2 train, training0 cycle 3 validation, Test0 + Test1 test.",
          protocol="protocol"),
      myo_common.all_config(),
  ]
  DEFAULT_BUILDER_CONFIG_NAME = "cycle"

  def _info(self) -> tfds.core.DatasetInfo:
    return myo_common.info(self, CLASS_NAMES, HOMEPAGE)

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    manual_dir = emg_common.manual_dir(dl_manager)
    protocol = self.builder_config.protocol
    recordings = find_recordings(manual_dir)
    if protocol == "protocol":
      tested = {r.person_id for r in recordings if r.session != 0}
      if not tested:
        raise emg_common.CorpusError(
            f"config 'protocol' needs the publisher's {EVALUATION_GROUP} layout "
            f"(<person>/training0, Test0, Test1), but no person in manual_dir {manual_dir} has a "
            "Test0 or Test1 folder; build config 'cycle' or 'all' instead")
      recordings = [r for r in recordings if r.person_id in tested]
    by_split: dict[str, dict[str, Recording]] = {}
    for recording in recordings:
      split = split_of(recording, protocol)
      if split is not None:
        by_split.setdefault(split, {})[recording.path] = recording
    return {split: self._generate_examples(manual_dir, split, items)
            for split, items in sorted(by_split.items())}

  def _generate_examples(self, manual_dir: epath.Path, split: str,
                         recordings: dict[str, Recording]) -> Iterator[tuple[str, dict]]:
    """Windows of every recording of one split, read in one pass over the archive or folder."""
    config = self.builder_config
    short = seen = 0
    for member in iter_corpus(manual_dir, lambda path: path in recordings):
      recording = recordings[member.path]
      seen += 1
      emg_tc = read_recording(member.data, member.source)
      emg_ct = myo_common.preprocess(emg_tc, member.source, config)
      if emg_ct.shape[1] < config.window:
        short += 1
      for index, window in myo_common.windows(emg_ct, config):
        key = f"{recording.subject:03d}_{recording.session}_{recording.index:02d}_{index:03d}"
        yield key, {"emg": window, "label": recording.label, "subject": recording.subject,
                    "session": recording.session, "repetition": recording.cycle + 1}
    if seen != len(recordings):
      raise emg_common.CorpusError(f"manual_dir {manual_dir} changed during the build: "
                                   f"{len(recordings) - seen} {split} files disappeared")
    if short:
      logger.warning("myoarmband %s/%s: skipped %d of %d files shorter than one window "
                     "(%d samples)", config.name, split, short, len(recordings), config.window)
