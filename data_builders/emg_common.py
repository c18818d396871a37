"""Shared pieces of the EMG corpus builders: record schema, filters, resampling, windows, splits.

Every builder writes the same record schema (channels-first float32 `emg`, integer `subject`,
`session` and `repetition` ids, plus the corpus's task target) and records its sampling rate,
channel count, window and stride in `info.metadata`. Signal processing here works on whole
recordings ([C, T] arrays); windows are cut only after filtering and resampling.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import scipy.signal
import tensorflow_datasets as tfds
from etils import epath


class CorpusError(ValueError):
  """A file in `manual_dir` is missing, unreadable or holds values outside the corpus's format."""


@dataclasses.dataclass(eq=False)
class EmgBuilderConfig(tfds.core.BuilderConfig):
  """A variant that changes what is written: output rate, window length and stride.

  Attributes:
    sample_rate_hz: rate of the written `emg`, after any resampling.
    window: window length in samples at `sample_rate_hz`.
    stride: hop between window starts in samples at `sample_rate_hz`.
    band_hz: (low, high) edges of the 4th-order Butterworth band-pass, or None for no band-pass.
    notch_hz: centre of the notch filter (Q = 30), or None for no notch.
    split_by: "protocol" for the corpus's published split, "subject" for a subject-disjoint one.
  """

  sample_rate_hz: float = 0.0
  window: int = 0
  stride: int = 0
  band_hz: tuple[float, float] | None = None
  notch_hz: float | None = None
  split_by: str = "protocol"


def pretraining_config(name: str, description: str,
                       split_by: str = "protocol") -> EmgBuilderConfig:
  """Returns a config with the paper's 2 kHz pretraining preprocessing and windows.

  20-450 Hz band-pass, 50 Hz notch, windows of 1000 samples (0.5 s) with stride 500 (50 %).
  """
  return EmgBuilderConfig(
      name=name, description=f"{description} Windows 1000 samples (0.5 s), stride 500.",
      sample_rate_hz=2000.0, window=1000, stride=500, band_hz=(20.0, 450.0), notch_hz=50.0,
      split_by=split_by)


def manual_dir(dl_manager: tfds.download.DownloadManager) -> epath.Path:
  """Returns `dl_manager.manual_dir`, turning TFDS's bare assertion into a CorpusError."""
  try:
    return dl_manager.manual_dir
  except AssertionError as error:
    raise CorpusError(str(error).split(" Create it")[0]) from error


def emg_features(num_channels: int, window: int,
                 target: Mapping[str, Any]) -> tfds.features.FeaturesDict:
  """Returns the project-wide record schema with `target` (e.g. {"label": ClassLabel}) added."""
  return tfds.features.FeaturesDict({
      "emg": tfds.features.Tensor(shape=(num_channels, window), dtype=np.float32),
      **target,
      "subject": tfds.features.Scalar(dtype=np.int32),
      "session": tfds.features.Scalar(dtype=np.int32),
      "repetition": tfds.features.Scalar(dtype=np.int32),
  })


def emg_metadata(config: EmgBuilderConfig, num_channels: int,
                 **extra: Any) -> tfds.core.MetadataDict:
  """Returns the `info.metadata` every builder carries (rate, channels, window, stride)."""
  return tfds.core.MetadataDict(
      sample_rate_hz=float(config.sample_rate_hz), num_channels=int(num_channels),
      window=int(config.window), stride=int(config.stride), **extra)


def windowed_info(builder: tfds.core.DatasetBuilder, num_channels: int,
                  target: Mapping[str, Any], *, homepage: str,
                  supervised_target: str | None = None) -> tfds.core.DatasetInfo:
  """Returns the DatasetInfo of a corpus cut into fixed windows under `builder`'s config.

  Raises:
    ValueError: the config's window or stride is not a positive sample count.
  """
  config = builder.builder_config
  check_window(config)
  return builder.dataset_info_from_configs(
      features=emg_features(num_channels, config.window, target),
      supervised_keys=("emg", supervised_target) if supervised_target else None,
      homepage=homepage, metadata=emg_metadata(config, num_channels))


def check_window(config: EmgBuilderConfig) -> None:
  """Raises ValueError when the config's window or stride is not a positive sample count."""
  if config.window <= 0 or config.stride <= 0:
    raise ValueError(f"config {config.name!r}: window and stride must be positive sample counts, "
                     f"got window={config.window}, stride={config.stride}")


def zero_order_hold(time_s: np.ndarray, values: np.ndarray, rate_hz: float) -> np.ndarray:
  """Resamples irregularly timed rows onto a uniform grid by holding the last value.

  Args:
    time_s: [T] strictly increasing sample times in seconds.
    values: [T, ...] values at those times.
    rate_hz: rate of the output grid, which starts at `time_s[0]`.

  Returns:
    [G, ...] with G = floor((time_s[-1] - time_s[0]) * rate_hz) + 1; row g holds the last input
    row whose time is <= time_s[0] + g / rate_hz.
  """
  span = (time_s[-1] - time_s[0]) * rate_hz
  grid = np.arange(int(np.floor(span + 1e-9)) + 1) / rate_hz + time_s[0]
  # The small tolerance keeps rows that sit exactly on a grid point despite float rounding.
  index = np.searchsorted(time_s, grid + 1e-9 / rate_hz, side="right") - 1
  return values[index]


def bandpass_notch_sos(rate_hz: float, band_hz: tuple[float, float] | None,
                       notch_hz: float | None, order: int = 4, notch_q: float = 30.0) -> np.ndarray:
  """Returns second-order sections of a Butterworth band-pass followed by an IIR notch."""
  sections = []
  if band_hz is not None:
    low, high = band_hz
    if not 0 < low < high < rate_hz / 2:
      raise ValueError(f"band-pass {band_hz} Hz does not fit below Nyquist at {rate_hz} Hz")
    sections.append(scipy.signal.butter(order, [low, high], btype="bandpass", fs=rate_hz,
                                        output="sos"))
  if notch_hz is not None:
    if not 0 < notch_hz < rate_hz / 2:
      raise ValueError(f"notch {notch_hz} Hz does not fit below Nyquist at {rate_hz} Hz")
    b, a = scipy.signal.iirnotch(notch_hz, notch_q, fs=rate_hz)
    sections.append(scipy.signal.tf2sos(b, a))
  if not sections:
    return np.zeros((0, 6))
  return np.concatenate(sections, axis=0)


def filter_recording(x_ct: np.ndarray, sos: np.ndarray) -> np.ndarray:
  """Applies `sos` zero-phase along time to a whole recording [C, T]; returns float64 [C, T]."""
  x_ct = np.asarray(x_ct, dtype=np.float64)
  if sos.shape[0] == 0:
    return x_ct
  # sosfiltfilt pads 3 * (2 * sections + 1) samples at each end; shorter input cannot be filtered.
  min_len = 3 * (2 * sos.shape[0] + 1) + 1
  if x_ct.shape[-1] < min_len:
    raise ValueError(f"recording of {x_ct.shape[-1]} samples is too short to filter "
                     f"(needs at least {min_len})")
  return scipy.signal.sosfiltfilt(sos, x_ct, axis=-1)


def resample_rational(x_ct: np.ndarray, up: int, down: int) -> np.ndarray:
  """Resamples [C, T] along time by up/down with scipy's polyphase anti-aliasing filter."""
  if up == down:
    return x_ct
  return scipy.signal.resample_poly(x_ct, up, down, axis=-1)


def constant_runs(labels_t: np.ndarray) -> list[tuple[int, int, int]]:
  """Returns the maximal runs of equal labels as (start, stop, label), stop exclusive."""
  labels_t = np.asarray(labels_t)
  if labels_t.size == 0:
    return []
  edges = np.flatnonzero(labels_t[1:] != labels_t[:-1]) + 1
  starts = np.concatenate([[0], edges])
  stops = np.concatenate([edges, [labels_t.size]])
  return [(int(a), int(b), int(labels_t[a])) for a, b in zip(starts, stops)]


def window_starts(length: int, window: int, stride: int) -> np.ndarray:
  """Returns the start of every full window of `window` samples, `stride` apart, in `length`."""
  if length < window:
    return np.zeros((0,), dtype=np.int64)
  return np.arange(0, length - window + 1, stride, dtype=np.int64)


def iter_windows(x_ct: np.ndarray, start: int, stop: int, window: int,
                 stride: int) -> Iterator[tuple[int, np.ndarray]]:
  """Yields (index, float32 [C, window]) for the full windows inside x_ct[:, start:stop]."""
  for i, offset in enumerate(window_starts(stop - start, window, stride)):
    begin = start + int(offset)
    yield i, np.ascontiguousarray(x_ct[:, begin:begin + window], dtype=np.float32)


def subject_split(subject: int, *, validation: range | tuple[int, ...],
                  test_from: int) -> str:
  """Maps a subject id to "train", "validation" or "test" by id (no subject in two splits)."""
  if subject >= test_from:
    return "test"
  if subject in validation:
    return "validation"
  return "train"


def check_finite(x: np.ndarray, source: str) -> None:
  """Raises CorpusError naming `source` and the first bad position if `x` holds NaN or Inf."""
  bad = ~np.isfinite(x)
  if bad.any():
    position = tuple(int(i) for i in np.argwhere(bad)[0])
    raise CorpusError(f"{source}: {int(bad.sum())} non-finite values (first at index {position})")


def stable_id(text: str) -> int:
  """Maps a string id (user hash, session name) to a stable non-negative int32."""
  return zlib.crc32(text.encode("utf-8")) & 0x7FFFFFFF


def hashed_subject_split(subject: str, *, validation_percent: int = 10,
                         test_percent: int = 10) -> str:
  """Assigns a subject to a split by a stable hash of its id, so no subject spans two splits."""
  bucket = stable_id(subject) % 100
  if bucket < test_percent:
    return "test"
  if bucket < test_percent + validation_percent:
    return "validation"
  return "train"


class BeamAwareBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """A builder whose `_generate_examples` may return a Beam PTransform when Beam was requested.

  `self.use_beam` is True while preparing if the DownloadConfig carries a Beam runner or options
  (the build command's `--beam_pipeline_options`); otherwise examples come from a plain generator.
  Both paths yield the same (key, example) pairs, so they write identical records.
  """

  use_beam = False

  def _generate_splits(self, dl_manager, download_config):
    self.use_beam = (download_config.beam_runner is not None
                     or download_config.beam_options is not None)
    return super()._generate_splits(dl_manager, download_config)

  def _examples_from(self, items: list, examples_of: Callable[[Any], Iterator[tuple[str, dict]]]):
    """Returns examples of every item, as a Beam PTransform or a generator."""
    if self.use_beam:
      import apache_beam as beam  # optional extra [beam]
      return beam.Create(items) | beam.Reshuffle() | beam.FlatMap(examples_of)
    return (example for item in items for example in examples_of(item))

  def _generate_examples(self, **kwargs):
    raise NotImplementedError("examples come from _split_generators")
