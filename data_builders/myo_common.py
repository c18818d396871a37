"""Shared pieces of the Myo-armband corpus builders (8 channels, 200 Hz, signed 8-bit samples).

The four Myo corpora (`myoarmband`, `myo_readings`, `myodisco`, `ciil`) ship as the publishers'
folder layouts, packed as `.tar.xz`. `iter_members` streams the files a builder wants straight out
of the archive (or out of its unpacked folder) without extracting anything to disk.
`MyoConfig` and `preprocess` give every corpus the preprocessing of UCI-EMG's `hz200` config
(20-90 Hz band-pass, 50 Hz notch, Myo integer units), so that windows from other people look like
the UCI windows a pretrained model is fine-tuned on.
"""

from __future__ import annotations

import dataclasses
import functools
import lzma
import os
import tarfile
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from data_builders import emg_common

NUM_CHANNELS = 8
RATE_HZ = 200.0
BAND_HZ = (20.0, 90.0)
NOTCH_HZ = 50.0
SAMPLE_RANGE = (-128, 127)        # the Myo's int8 samples
UNLABELED = "none"                # label of `all` windows that do not lie inside one gesture
ALL_VALIDATION_PERCENT = 10       # people held out of `all` training, for the per-corpus eval loss
_ARCHIVE_ERRORS = (tarfile.TarError, lzma.LZMAError, EOFError, OSError)


@dataclasses.dataclass(frozen=True)
class Member:
  """One file of a corpus: its path below the corpus root (posix) and its bytes.

  `source` names it in messages: "<archive>:<member>" or the file's path.
  """

  path: str
  data: bytes
  source: str


def iter_members(manual_dir: epath.Path | str, archive_names: Sequence[str], root: str,
                 keep: Callable[[str], bool]) -> Iterator[Member]:
  """Yields the files below `root` whose relative path passes `keep`.

  `manual_dir` holds one of `archive_names` (a `.tar.xz`, read as a stream: one pass, nothing
  extracted), or the unpacked `root/` folder, or is itself that folder. Archive members come in
  archive order, unpacked files sorted by path.

  Raises:
    emg_common.CorpusError: `manual_dir` is missing, holds neither layout, or the archive is
      truncated or corrupt (the message names the archive).
  """
  manual_dir = epath.Path(manual_dir)
  if not manual_dir.is_dir():
    raise emg_common.CorpusError(f"manual_dir {manual_dir} does not exist; put "
                                 f"{archive_names[0]} or its unpacked {root}/ folder there")
  for name in archive_names:
    if (manual_dir / name).exists():
      yield from _archive_members(manual_dir / name, root, keep)
      return
  folder = manual_dir / root if (manual_dir / root).is_dir() else manual_dir
  found = False
  for relative in files_below(folder):
    if keep(relative):
      found = True
      path = folder / relative
      yield Member(relative, path.read_bytes(), path.as_posix())
  if not found:
    raise emg_common.CorpusError(
        f"manual_dir {manual_dir} holds neither {' nor '.join(archive_names)} nor the "
        f"unpacked {root}/ folder with the corpus's files")


def files_below(folder: epath.Path) -> list[str]:
  """Posix paths of every file below a local folder, relative to it, sorted."""
  top = os.fspath(folder)
  return sorted(os.path.relpath(os.path.join(d, f), top).replace(os.sep, "/")
                for d, _, files in os.walk(top) for f in files)


def _archive_members(archive: epath.Path, root: str, keep: Callable[[str], bool]
                     ) -> Iterator[Member]:
  prefix = root.rstrip("/") + "/"
  try:
    with archive.open("rb") as raw, tarfile.open(fileobj=raw, mode="r|xz") as tar:
      for info in tar:
        if not info.isfile() or not info.name.startswith(prefix):
          continue
        relative = info.name[len(prefix):]
        if keep(relative):
          handle = tar.extractfile(info)
          yield Member(relative, handle.read(), f"{archive}:{info.name}")
  except _ARCHIVE_ERRORS as error:
    raise emg_common.CorpusError(f"{archive}: truncated or corrupt archive "
                                 f"({type(error).__name__}: {error})") from error


@dataclasses.dataclass(eq=False)
class MyoConfig(emg_common.EmgBuilderConfig):
  """A variant of a Myo corpus: `protocol` names the split it writes; `all_windows` = pretraining.

  With `all_windows`, every window of every recording is written (label "none" where it does not
  lie inside one gesture), split by person into train and a ~10 % validation group.
  """

  protocol: str = ""
  all_windows: bool = False


def info(builder, class_names: Sequence[str], homepage: str) -> tfds.core.DatasetInfo:
  """The DatasetInfo of a Myo builder: `label` = the corpus's classes (+ "none" for `all`)."""
  names = tuple(class_names) + ((UNLABELED,) if builder.builder_config.all_windows else ())
  return emg_common.windowed_info(builder, NUM_CHANNELS,
                                  {"label": tfds.features.ClassLabel(names=names)},
                                  homepage=homepage, supervised_target="label")


def labeled_config(name: str, description: str, protocol: str, stride: int = 50) -> MyoConfig:
  """A config of 1 s windows (200 samples) inside one gesture, `stride` samples apart."""
  return MyoConfig(name=name, description=f"{description} Windows 200 samples (1.0 s), stride "
                   f"{stride} ({stride / RATE_HZ:g} s).", sample_rate_hz=RATE_HZ, window=200,
                   stride=stride, band_hz=BAND_HZ, notch_hz=NOTCH_HZ, protocol=protocol)


def all_config(stride: int = 100) -> MyoConfig:
  """The pretraining config: every 1 s window of every recording, `stride` samples apart."""
  return MyoConfig(name="all", description=f"Every window of every recording, labeled or not, "
                   f"200 samples (1.0 s), stride {stride} ({stride / RATE_HZ:g} s); split by "
                   f"person: train and a {ALL_VALIDATION_PERCENT}% validation group.",
                   sample_rate_hz=RATE_HZ, window=200, stride=stride, band_hz=BAND_HZ,
                   notch_hz=NOTCH_HZ, protocol="all", all_windows=True)


def all_split(person: str) -> str:
  """"train" or "validation" for a person of an `all` config, from a stable hash of its id."""
  return emg_common.hashed_subject_split(person, validation_percent=ALL_VALIDATION_PERCENT,
                                         test_percent=0)


def check_samples(emg_tc: np.ndarray, source: str) -> np.ndarray:
  """Checks a [T, 8] recording holds finite Myo int8 values; returns it as float64.

  Raises:
    emg_common.CorpusError: wrong channel count, no samples, NaN/Inf, or values outside
      [-128, 127]; the message names `source` and the problem.
  """
  emg_tc = np.asarray(emg_tc, dtype=np.float64)
  if emg_tc.ndim != 2 or emg_tc.shape[1] != NUM_CHANNELS:
    raise emg_common.CorpusError(f"{source}: expected [samples, {NUM_CHANNELS}] values, got "
                                 f"shape {emg_tc.shape}")
  if emg_tc.shape[0] == 0:
    raise emg_common.CorpusError(f"{source}: no samples")
  emg_common.check_finite(emg_tc, source)
  lo, hi = SAMPLE_RANGE
  outside = (emg_tc < lo) | (emg_tc > hi)
  if outside.any():
    row, col = (int(i) for i in np.argwhere(outside)[0])
    raise emg_common.CorpusError(f"{source}: value {emg_tc[row, col]:g} at sample {row}, channel "
                                 f"{col} is outside the Myo's range [{lo}, {hi}]")
  return emg_tc


def preprocess(emg_tc: np.ndarray, source: str, config: MyoConfig) -> np.ndarray:
  """[T, 8] int8-valued samples -> float64 [8, T] filtered zero-phase, in Myo integer units.

  Raises:
    emg_common.CorpusError: as `check_samples`, or a recording too short to filter.
  """
  emg_ct = check_samples(emg_tc, source).T
  # scipy's filter wants a writable array: each call gets a copy of the cached design.
  sos = _filter_sos(tuple(config.band_hz) if config.band_hz else None, config.notch_hz).copy()
  try:
    return emg_common.filter_recording(emg_ct, sos)
  except ValueError as error:
    raise emg_common.CorpusError(f"{source}: {error}") from error


@functools.lru_cache(maxsize=8)
def _filter_sos(band_hz: tuple[float, float] | None, notch_hz: float | None) -> np.ndarray:
  """The config's filter at 200 Hz, designed once per (band, notch)."""
  return emg_common.bandpass_notch_sos(RATE_HZ, band_hz, notch_hz)


def windows(emg_ct: np.ndarray, config: MyoConfig, start: int = 0,
            stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
  """(index, float32 [8, window]) for the full windows of `config` inside emg_ct[:, start:stop]."""
  stop = emg_ct.shape[-1] if stop is None else stop
  return emg_common.iter_windows(emg_ct, start, stop, config.window, config.stride)
