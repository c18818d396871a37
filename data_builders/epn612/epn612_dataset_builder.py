"""TFDS builder for EMG-EPN-612 (Benalcazar et al.): Myo armband, 8 channels at 200 Hz, 6 classes.

`<root>/trainingJSON/user<K>/user<K>.json` and `<root>/testingJSON/user<K>/user<K>.json`, one
JSON object per user with blocks `trainingSamples` and `testingSamples` of `idx_<n>` recordings
(`emg` -> `ch1`..`ch8` raw Myo integers, `gestureName`). The testing users' `testingSamples`
carry no labels and are not read. A recording (~5 s) is one example: emg / 128, filtered whole,
then zero-padded or truncated to the window; both are counted in `info.metadata`.
"""

from __future__ import annotations

import collections
import functools
import json
import re
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from data_builders import emg_common

NUM_CHANNELS = 8
RATE_HZ = 200.0
ROOT_FOLDER = "EMG-EPN612 Dataset"
GROUPS = ("trainingJSON", "testingJSON")
BLOCKS = ("trainingSamples", "testingSamples")        # session 1, 2
# TinyMyo's class order (scripts/epn.py).
CLASSES = ("noGesture", "waveIn", "waveOut", "pinch", "open", "fist")
TRAIN_PER_GESTURE = 10       # protocol: a testing user's first 10 recordings per gesture train
VALIDATION_USER_EVERY = 10   # by_user: training users K with K % 10 == 0 are validation
SPLITS = ("train", "validation", "test")
USER_RE = re.compile(r"^user(\d+)$")


def dataset_root(manual_dir: epath.Path) -> epath.Path:
  """Returns the folder holding trainingJSON/ and testingJSON/ (the zip's root or manual_dir)."""
  manual_dir = epath.Path(manual_dir)
  if not manual_dir.is_dir():
    raise emg_common.CorpusError(f"manual_dir {manual_dir} does not exist")
  root = manual_dir / ROOT_FOLDER if (manual_dir / ROOT_FOLDER).is_dir() else manual_dir
  if not any((root / group).is_dir() for group in GROUPS):
    raise emg_common.CorpusError(f"{root} holds neither trainingJSON/ nor testingJSON/ (unzip "
                                 f"'EMG-EPN612 Dataset.zip' into manual_dir)")
  return root


def find_users(root: epath.Path) -> list[tuple[str, int, str]]:
  """Returns (group, user number, json path) for every user<K>/user<K>.json, sorted."""
  users = []
  for group in GROUPS:
    if not (root / group).is_dir():
      continue
    for folder in (root / group).iterdir():
      match = USER_RE.match(folder.name)
      if not match:
        continue
      path = folder / f"{folder.name}.json"
      if not path.exists():
        raise emg_common.CorpusError(f"{folder}: {path.name} is missing")
      users.append((group, int(match[1]), path.as_posix()))
  if not users:
    raise emg_common.CorpusError(f"{root}: no user<K>/user<K>.json under {' or '.join(GROUPS)}")
  return sorted(users)


def subject_id(group: str, user: int) -> int:
  """Training users keep K (1..306), testing users become 306 + K (307..612)."""
  return user if group == "trainingJSON" else 306 + user


def read_recordings(path: str, block: str) -> list[tuple[int, str, np.ndarray]]:
  """Returns (n of idx_n, gesture name, emg int [8, T]) of one block, ordered by n."""
  try:
    with epath.Path(path).open() as handle:
      user = json.load(handle)
  except (OSError, ValueError) as error:
    raise emg_common.CorpusError(f"{path}: unreadable JSON ({error})") from error
  if block not in user:
    raise emg_common.CorpusError(f"{path}: no {block!r} block (keys: {sorted(user)})")
  out = []
  for key, sample in user[block].items():
    index = int(key.removeprefix("idx_"))
    where = f"{path} {block}/{key}"
    if "gestureName" not in sample:
      raise emg_common.CorpusError(f"{where}: no gestureName")
    channels = [f"ch{c}" for c in range(1, NUM_CHANNELS + 1)]
    emg = sample.get("emg", {})
    if sorted(emg) != sorted(channels):
      raise emg_common.CorpusError(f"{where}: emg has channels {sorted(emg)}, expected "
                                   f"ch1..ch{NUM_CHANNELS}")
    lengths = {len(emg[c]) for c in channels}
    if len(lengths) != 1:
      raise emg_common.CorpusError(f"{where}: channels differ in length {sorted(lengths)}")
    values = np.asarray([emg[c] for c in channels], dtype=np.float64)
    emg_common.check_finite(values, where)
    out.append((index, sample["gestureName"], values))
  return sorted(out, key=lambda item: item[0])


def block_examples(item: tuple[str, int, str, str], *, split_by: str, split: str,
                   sos: np.ndarray, window: int,
                   counts: collections.Counter) -> Iterator[tuple[str, dict]]:
  """Yields the recordings of one (group, user, path, block) that belong to `split`."""
  group, user, path, block = item
  seen = collections.Counter()
  for index, gesture, raw in read_recordings(path, block):
    if gesture not in CLASSES:
      raise emg_common.CorpusError(f"{path} {block}/idx_{index}: gestureName {gesture!r} is not "
                                   f"one of {list(CLASSES)}")
    seen[gesture] += 1
    if recording_split(group, user, block, seen[gesture], split_by) != split:
      continue
    length = raw.shape[1]
    try:
      emg_ct = emg_common.filter_recording(raw / 128.0, sos)
    except ValueError:
      counts["skipped_too_short"] += 1
      continue
    if length < window:
      counts["padded"] += 1
      emg_ct = np.pad(emg_ct, ((0, 0), (0, window - length)))
    elif length > window:
      counts["truncated"] += 1
    yield f"{group}_{user:03d}_{block}_{index:03d}", {
        "emg": emg_ct[:, :window].astype(np.float32), "label": CLASSES.index(gesture),
        "subject": subject_id(group, user), "session": BLOCKS.index(block) + 1,
        "repetition": index}


def recording_split(group: str, user: int, block: str, nth_of_gesture: int,
                    split_by: str) -> str | None:
  """Returns the split of one recording (None = not used) under `split_by`."""
  if group == "testingJSON":
    if block != "trainingSamples":
      return None
    if split_by == "subject":
      return "test"
    return "train" if nth_of_gesture <= TRAIN_PER_GESTURE else "test"
  if split_by == "subject":
    return "validation" if user % VALIDATION_USER_EVERY == 0 else "train"
  return "train" if block == "trainingSamples" else "validation"


class Builder(tfds.core.GeneratorBasedBuilder):
  """EMG-EPN-612 recordings (8 ch, 200 Hz) as 1000-sample examples, TinyMyo or cross-user split."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "emg / 128, 20-90 Hz band-pass + 50 Hz notch, pad/truncate to 1000."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Download 'EMG-EPN612 Dataset.zip' from https://zenodo.org/records/4421500 and unzip it into "
      "manual_dir (manual_dir/EMG-EPN612 Dataset/trainingJSON/user1/user1.json ...).")
  BUILDER_CONFIGS = [
      emg_common.EmgBuilderConfig(
          name="default", description="TinyMyo split: training users' trainingSamples + testing "
          "users' first 10 per gesture train, training users' testingSamples validation, the "
          "rest of the testing users' trainingSamples test; 1000 samples (5 s).",
          sample_rate_hz=RATE_HZ, window=1000, stride=1000, band_hz=(20.0, 90.0), notch_hz=50.0),
      emg_common.EmgBuilderConfig(
          name="by_user", description="Cross-user: training users train (every 10th user "
          "validation), testing users' trainingSamples test; 1000 samples (5 s).",
          sample_rate_hz=RATE_HZ, window=1000, stride=1000, band_hz=(20.0, 90.0), notch_hz=50.0,
          split_by="subject"),
  ]
  DEFAULT_BUILDER_CONFIG_NAME = "default"

  def _info(self) -> tfds.core.DatasetInfo:
    return emg_common.windowed_info(
        self, NUM_CHANNELS, {"label": tfds.features.ClassLabel(names=CLASSES)},
        homepage="https://zenodo.org/records/4421500", supervised_target="label")

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    users = find_users(dataset_root(emg_common.manual_dir(dl_manager)))
    config = self.builder_config
    self._counts = collections.Counter()
    training = [(g, u, p) for g, u, p in users if g == "trainingJSON"]
    testing = [(g, u, p, "trainingSamples") for g, u, p in users if g == "testingJSON"]
    if config.split_by == "subject":
      both = [(g, u, p, b) for g, u, p in training for b in BLOCKS]
      blocks = {"train": both, "validation": both, "test": testing}
    else:
      blocks = {"train": [(g, u, p, "trainingSamples") for g, u, p in training] + testing,
                "validation": [(g, u, p, "testingSamples") for g, u, p in training],
                "test": testing}
    sos = emg_common.bandpass_notch_sos(RATE_HZ, config.band_hz, config.notch_hz)
    return {split: self._generate_examples(items, split=split, sos=sos)
            for split, items in blocks.items() if items}

  def _generate_examples(self, items, *, split: str, sos: np.ndarray):
    examples_of = functools.partial(block_examples, split_by=self.builder_config.split_by,
                                    split=split, sos=sos, window=self.builder_config.window,
                                    counts=self._counts)
    for item in items:
      yield from examples_of(item)

  def _generate_splits(self, dl_manager, download_config):
    result = super()._generate_splits(dl_manager, download_config)
    self.info.metadata.update(
        padded=self._counts["padded"], truncated=self._counts["truncated"],
        skipped_too_short=self._counts["skipped_too_short"])
    return result
