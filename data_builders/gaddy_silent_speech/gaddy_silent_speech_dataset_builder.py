"""TFDS builder for the Gaddy & Klein silent-speech EMG corpus (8 facial EMG channels at 1 kHz).

Per utterance `<i>` of a session folder: `<i>_info.json` (`book`, `sentence_index`, `text`,
`chunks`), `<i>_emg.npy` [T, 8] and `<i>_audio_clean.flac` (`.wav` accepted too). Each utterance
is one variable-length example: filtered EMG [8, T], its transcript and MFCC frames [F, 26] of
the clean audio (`mfcc.py`). Splits come from the authors' `testset_*.json` (shipped in
`splits/`): dev/test sentences are taken from silent sessions only, and every utterance of a
dev/test sentence is kept out of training.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path

import numpy as np
import scipy.io.wavfile
import tensorflow_datasets as tfds
from etils import epath

from data_builders import emg_common
from data_builders.gaddy_silent_speech import mfcc as mfcc_lib

NUM_CHANNELS = 8
RATE_HZ = 1000.0
DATA_FOLDER = "emg_data"
# Open-vocabulary folders (closed_vocab/ is a separate task and is not read).
FOLDERS = {"silent_parallel_data": True, "voiced_parallel_data": False,
           "nonparallel_data": False}         # folder -> silent
SPLITS_DIR = Path(__file__).resolve().parent / "splits"
INFO_RE = re.compile(r"^(\d+)_info\.json$")
AUDIO_SUFFIXES = ("_audio_clean.flac", "_audio_clean.wav")

log = logging.getLogger(__name__)


@dataclasses.dataclass(eq=False)
class GaddyConfig(emg_common.EmgBuilderConfig):
  """Adds the split file (`testset_origdev.json` or `testset_largedev.json`)."""

  testset: str = "testset_origdev.json"


@dataclasses.dataclass(frozen=True)
class Utterance:
  folder: str       # e.g. silent_parallel_data/5-4_silent
  index: int
  path_prefix: str  # <session folder>/<i>
  silent: bool
  sentence: tuple[str, int]
  text: str


def data_folder(manual_dir: epath.Path) -> epath.Path:
  """Returns `manual_dir/emg_data` (or `manual_dir` itself when it is that folder)."""
  manual_dir = epath.Path(manual_dir)
  if not manual_dir.is_dir():
    raise emg_common.CorpusError(f"manual_dir {manual_dir} does not exist")
  root = manual_dir / DATA_FOLDER if (manual_dir / DATA_FOLDER).is_dir() else manual_dir
  if not any((root / folder).is_dir() for folder in FOLDERS):
    raise emg_common.CorpusError(f"{root} holds none of {sorted(FOLDERS)} (extract "
                                 "emg_data.tar.gz into manual_dir)")
  return root


def find_utterances(root: epath.Path) -> tuple[list[Utterance], int]:
  """Returns the utterances with sentence_index >= 0 and the count of skipped reference clips."""
  found, skipped = [], 0
  for folder, silent in FOLDERS.items():
    if not (root / folder).is_dir():
      continue
    for session in sorted((root / folder).iterdir()):
      for info_path in sorted(session.glob("*_info.json")):
        match = INFO_RE.match(info_path.name)
        if not match:
          continue
        try:
          info = json.loads(info_path.read_text())
          book, sentence, text = info["book"], int(info["sentence_index"]), info["text"]
        except (ValueError, KeyError, TypeError) as error:
          raise emg_common.CorpusError(f"{info_path}: not an utterance info file "
                                       f"({type(error).__name__}: {error})") from error
        if sentence < 0:        # silence / reference clips, not utterances
          skipped += 1
          continue
        found.append(Utterance(f"{folder}/{session.name}", int(match[1]),
                               (session / match[1]).as_posix(), silent, (book, sentence), text))
  if not found:
    raise emg_common.CorpusError(f"{root}: no <i>_info.json with sentence_index >= 0")
  return sorted(found, key=lambda u: (u.folder, u.index)), skipped


def read_testset(name: str) -> dict[str, set[tuple[str, int]]]:
  """Reads an authors' split file into {"validation": ..., "test": ...} sentence sets."""
  data = json.loads((SPLITS_DIR / name).read_text())
  return {"validation": {(b, int(i)) for b, i in data["dev"]},
          "test": {(b, int(i)) for b, i in data["test"]}}


def utterance_split(utterance: Utterance, testset: dict[str, set]) -> str | None:
  """Dev/test sentences from silent sessions; their voiced copies are used nowhere."""
  for split in ("test", "validation"):
    if utterance.sentence in testset[split]:
      return split if utterance.silent else None
  return "train"


def read_audio(prefix: str) -> tuple[np.ndarray, float]:
  """Returns the clean audio of an utterance as mono float64 and its rate."""
  for suffix in AUDIO_SUFFIXES:
    path = epath.Path(prefix + suffix)
    if not path.exists():
      continue
    if suffix.endswith(".flac"):
      try:
        import soundfile  # optional: only needed for the publisher's FLAC files
      except ImportError as error:
        raise emg_common.CorpusError(
            f"{path}: reading FLAC needs the Python package 'soundfile' (pip install soundfile), "
            "which is not installed") from error
      audio, rate = soundfile.read(str(path), dtype="float64")
    else:
      try:
        rate, audio = scipy.io.wavfile.read(str(path))
      except ValueError as error:
        raise emg_common.CorpusError(f"{path}: unreadable WAV ({error})") from error
      if np.issubdtype(audio.dtype, np.integer):
        audio = audio / float(np.iinfo(audio.dtype).max + 1)
    audio = np.asarray(audio, dtype=np.float64)
    return (audio.mean(axis=1) if audio.ndim == 2 else audio), float(rate)
  raise emg_common.CorpusError(f"{prefix}: no clean audio ({' or '.join(AUDIO_SUFFIXES)})")


def read_emg(prefix: str) -> np.ndarray:
  """Returns `<i>_emg.npy` as float64 [8, T]; CorpusError names the file and the problem."""
  path = prefix + "_emg.npy"
  try:
    emg = np.load(path)
  except (OSError, ValueError, EOFError) as error:
    raise emg_common.CorpusError(f"{path}: unreadable .npy ({error})") from error
  if emg.ndim != 2 or emg.shape[1] != NUM_CHANNELS:
    raise emg_common.CorpusError(f"{path}: emg has shape {emg.shape}, expected (T, {NUM_CHANNELS})")
  emg_common.check_finite(emg, path)
  return emg.T.astype(np.float64)


class Builder(tfds.core.GeneratorBasedBuilder):
  """Gaddy & Klein utterances: EMG [8, T] at 1 kHz, transcript and 26 MFCCs per 10 ms frame."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "20-450 Hz band-pass + 60 Hz notch; MFCC 25 ms / 10 ms, 26 coeffs."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Download emg_data.tar.gz from https://doi.org/10.5281/zenodo.4064408 and extract it into "
      "manual_dir (manual_dir/emg_data/silent_parallel_data/...). FLAC audio needs soundfile.")
  BUILDER_CONFIGS = [
      GaddyConfig(name="origdev", description="testset_origdev.json (30 dev / 100 test "
                  "sentences; TinyMyo's choice).", sample_rate_hz=RATE_HZ,
                  band_hz=(20.0, 450.0), notch_hz=60.0, testset="testset_origdev.json"),
      GaddyConfig(name="largedev", description="testset_largedev.json (200 dev / 100 test "
                  "sentences; the authors' default since 2021).", sample_rate_hz=RATE_HZ,
                  band_hz=(20.0, 450.0), notch_hz=60.0, testset="testset_largedev.json"),
  ]
  DEFAULT_BUILDER_CONFIG_NAME = "origdev"

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "emg": tfds.features.Tensor(shape=(NUM_CHANNELS, None), dtype=np.float32),
            "transcript": tfds.features.Text(),
            "mfcc": tfds.features.Tensor(shape=(None, mfcc_lib.NUM_CEPSTRA), dtype=np.float32),
            "subject": tfds.features.Scalar(dtype=np.int32),
            "session": tfds.features.Scalar(dtype=np.int32),
            "repetition": tfds.features.Scalar(dtype=np.int32),
        }),
        homepage="https://doi.org/10.5281/zenodo.4064408",
        # window/stride 0: every example is a whole utterance of variable length.
        metadata=emg_common.emg_metadata(self.builder_config, NUM_CHANNELS,
                                         mfcc_hop_s=mfcc_lib.HOP_S, mfcc_frame_s=mfcc_lib.FRAME_S))

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    utterances, skipped = find_utterances(data_folder(emg_common.manual_dir(dl_manager)))
    testset = read_testset(self.builder_config.testset)
    by_split: dict[str, list[Utterance]] = {}
    for utterance in utterances:
      split = utterance_split(utterance, testset)
      if split is not None:
        by_split.setdefault(split, []).append(utterance)
    unused = len(utterances) - sum(len(v) for v in by_split.values())
    self.info.metadata.update(utterances=len(utterances), reference_clips_skipped=skipped,
                              voiced_copies_of_eval_sentences=unused)
    return {split: self._generate_examples(items) for split, items in by_split.items()}

  def _generate_examples(self, utterances: list[Utterance]):
    config = self.builder_config
    sos = emg_common.bandpass_notch_sos(RATE_HZ, config.band_hz, config.notch_hz)
    for utterance in utterances:
      emg = read_emg(utterance.path_prefix)
      audio, rate = read_audio(utterance.path_prefix)
      try:
        emg_ct = emg_common.filter_recording(emg, sos)
        frames = mfcc_lib.mfcc(audio, rate)
      except ValueError as error:
        raise emg_common.CorpusError(f"{utterance.path_prefix}: {error}") from error
      yield f"{utterance.folder}/{utterance.index}", {
          "emg": emg_ct.astype(np.float32), "transcript": utterance.text, "mfcc": frames,
          "subject": 0, "session": emg_common.stable_id(utterance.folder), "repetition": -1}
