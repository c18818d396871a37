"""grain pipeline for the silent-speech tasks: whole utterances of variable length, bucketed.

Records (`gaddy_silent_speech`): `emg` float32 [C, T] at 1 kHz, `transcript` bytes, `mfcc`
[F, 26] on a 10 ms hop with 25 ms frames (frame g covers EMG samples [10 g, 10 g + 25)).
Batches (channels last, as `SpeechModel` takes them):
  "emg" [B, T_pad, C] float32, zero after "emg_len" [B] int32 valid samples; T_pad is the longest
    utterance of the batch rounded up to a multiple of `bucket` (one compiled shape per bucket);
  recognition: "labels" [B, U] int32 character ids (`units.text_to_ids`) padded with 0 after
    "label_len" [B]; U = max(T_pad / 16, longest label rounded up to 16);
  synthesis: "mfcc" [B, T_pad / 8, 26] float32, the corpus MFCCs linearly interpolated onto the
    model's frame grid (frame f covers samples [8 f, 8 f + 8)), valid for ceil(emg_len / 8) frames.
Evaluation batches are padded to `batch_size` rows with empty utterances (emg_len 0), which the
loss leaves out. `with_reference=True` adds host-only fields for test evaluation: "transcript"
(normalized text) and "mfcc_ref" (the corpus MFCCs), object arrays.
Training crops synthesis utterances longer than `max_len` to a random `max_len` segment (its MFCC
frames cropped alike); recognition utterances are never cropped (the text would no longer match).
"""

from __future__ import annotations

from collections.abc import Sequence

import grain
import jax
import numpy as np

from tinymyo_jax import input_pipeline
from tinymyo_jax import speech_units as units

DEFAULT_BUCKET = 1000  # samples: 1 s at 1 kHz
NORMALIZATIONS = ("standardize", "none")
MFCC_GRID = (10, 25)  # (hop, frame) of the corpus MFCCs in EMG samples at 1 kHz
STATS_UTTERANCES = 512  # utterances sampled for `input_pipeline.channel_stats`


def mfcc_grid(metadata: dict) -> tuple[int, int]:
  """(hop, frame) of the corpus MFCCs in EMG samples, from the builder's metadata."""
  rate = metadata.get("sample_rate_hz")
  if not rate or "mfcc_hop_s" not in metadata:
    return MFCC_GRID
  return (int(round(metadata["mfcc_hop_s"] * rate)), int(round(metadata["mfcc_frame_s"] * rate)))


def to_model_frames(mfcc_f26: np.ndarray, num_frames: int, grid=MFCC_GRID) -> np.ndarray:
  """Corpus MFCC frames -> `num_frames` frames on the model's grid (centre-aligned, linear).

  Model frame f is centred on sample 8 f + 3.5, corpus frame g on hop g + (frame - 1) / 2; frames
  outside the corpus span take the nearest corpus frame.
  """
  hop, frame = grid
  pos = (units.DOWNSAMPLE * np.arange(num_frames) + (units.DOWNSAMPLE - 1) / 2
         - (frame - 1) / 2) / hop
  return _interp_rows(np.asarray(mfcc_f26, np.float32), pos)


def to_corpus_frames(frames_f26: np.ndarray, num_corpus_frames: int, grid=MFCC_GRID) -> np.ndarray:
  """Inverse of `to_model_frames`: model-grid frames -> the corpus's 10 ms MFCC grid."""
  hop, frame = grid
  pos = (hop * np.arange(num_corpus_frames) + (frame - 1) / 2
         - (units.DOWNSAMPLE - 1) / 2) / units.DOWNSAMPLE
  return _interp_rows(np.asarray(frames_f26, np.float32), pos)


def _interp_rows(rows_fd: np.ndarray, pos: np.ndarray) -> np.ndarray:
  pos = np.clip(pos, 0.0, rows_fd.shape[0] - 1)
  lo = np.floor(pos).astype(np.int64)
  hi = np.minimum(lo + 1, rows_fd.shape[0] - 1)
  w = (pos - lo).astype(np.float32)[:, None]
  return (rows_fd[lo] * (1.0 - w) + rows_fd[hi] * w).astype(np.float32)


class PrepareUtterance(grain.transforms.RandomMap):
  """Record -> {"emg" [T, C] standardized, "emg_len", "labels" | "mfcc", references}."""

  def __init__(self, task: str, normalization: str, stats: dict | None, *, max_len: int,
               train: bool, grid=MFCC_GRID, with_reference: bool = False):
    if task not in units.TASKS:
      raise ValueError(f"unknown speech task {task!r}; expected one of {units.TASKS}")
    if normalization not in NORMALIZATIONS:
      raise ValueError(f"speech normalization must be one of {NORMALIZATIONS}, got "
                       f"{normalization!r}")
    if normalization == "standardize" and not stats:
      raise ValueError("normalization 'standardize' needs channel statistics (mean, std)")
    if max_len < 0 or max_len % units.DOWNSAMPLE:
      raise ValueError(f"max_len must be 0 (no cropping) or a positive multiple of "
                       f"{units.DOWNSAMPLE}, got {max_len}")
    self.task, self.train, self.max_len, self.grid = task, train, max_len, grid
    self.with_reference = with_reference
    self.stats = stats and (np.asarray(stats["mean"], np.float32),
                            np.asarray(stats["std"], np.float32))

  def random_map(self, record, rng: np.random.Generator):
    x = np.asarray(record["emg"], np.float32)
    if self.stats:
      if x.shape[0] != self.stats[0].shape[0]:
        raise ValueError(f"utterance has {x.shape[0]} EMG channels, the statistics "
                         f"{self.stats[0].shape[0]}")
      x = input_pipeline.standardize(x, *self.stats)
    x = np.ascontiguousarray(x.T)  # [T, C]
    out = {}
    if self.task == "recognition":
      text = record["transcript"]
      text = text.decode("utf-8") if isinstance(text, bytes) else str(text)
      out["labels"] = np.asarray(units.text_to_ids(text), np.int32)
      if self.with_reference:
        out["transcript"] = units.normalize_text(text)
    else:
      mfcc = np.asarray(record["mfcc"], np.float32)
      out["mfcc"] = to_model_frames(mfcc, units.output_length(x.shape[0]), self.grid)
      if self.with_reference:
        out["mfcc_ref"] = mfcc
      if self.train and self.max_len and x.shape[0] > self.max_len:
        start = units.DOWNSAMPLE * int(rng.integers(
            0, (x.shape[0] - self.max_len) // units.DOWNSAMPLE + 1))
        x = x[start:start + self.max_len]
        first = start // units.DOWNSAMPLE
        out["mfcc"] = out["mfcc"][first:first + self.max_len // units.DOWNSAMPLE]
    out["emg"] = x
    return out


def _round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


def collate(examples: Sequence[dict], *, bucket: int, rows: int | None = None,
            keep: slice | None = None) -> dict:
  """Pads a list of prepared utterances into one batch (see the module doc); `rows` pads the
  batch itself with empty utterances up to that many rows. `keep` returns only those rows, padded
  as the whole batch is (one process's rows of a global batch)."""
  n = len(examples)
  rows = max(rows or n, n)
  lengths = [e["emg"].shape[0] for e in examples]
  t_pad = _round_up(max(lengths), bucket)
  channels = examples[0]["emg"].shape[1]
  emg = np.zeros((rows, t_pad, channels), np.float32)
  for i, e in enumerate(examples):
    emg[i, :lengths[i]] = e["emg"]
  batch = {"emg": emg, "emg_len": np.array(lengths + [0] * (rows - n), np.int32)}
  if "labels" in examples[0]:
    label_lens = [len(e["labels"]) for e in examples]
    u = max(units.output_length(t_pad) // 2, _round_up(max(label_lens + [1]), 16))
    labels = np.zeros((rows, u), np.int32)
    for i, e in enumerate(examples):
      labels[i, :label_lens[i]] = e["labels"]
    batch.update(labels=labels, label_len=np.array(label_lens + [0] * (rows - n), np.int32))
  if "mfcc" in examples[0]:
    mfcc = np.zeros((rows, units.output_length(t_pad), examples[0]["mfcc"].shape[1]), np.float32)
    for i, e in enumerate(examples):
      frames = min(len(e["mfcc"]), mfcc.shape[1])
      mfcc[i, :frames] = e["mfcc"][:frames]
    batch["mfcc"] = mfcc
  for key in ("transcript", "mfcc_ref"):
    if key in examples[0]:
      column = np.empty(rows, dtype=object)
      column[:n] = [e[key] for e in examples]
      batch[key] = column
  return batch if keep is None else {k: v[keep] for k, v in batch.items()}


def make_dataset(sources: Sequence[input_pipeline.Source], split: str, *, data_dir: str,
                 batch_size: int, seed: int, train: bool, task: str,
                 normalization: str = "standardize", stats: Sequence[dict] | None = None,
                 max_len: int = 0, bucket: int = DEFAULT_BUCKET, records=None,
                 with_reference: bool = False,
                 process: tuple[int, int] | None = None) -> grain.IterDataset:
  """Batched utterance pipeline over one speech corpus.

  train=True: shuffled, repeated forever, full batches only. train=False: one ordered pass, every
  batch padded to `batch_size` rows (empty rows have emg_len 0). `batch_size` is per process.
  `stats` holds one dict (`input_pipeline.channel_stats` of the training split) for 'standardize'.

  With `process` = (index, count) (default: this JAX process's), count > 1, every process builds
  the same global stream of global batches of count * batch_size utterances (same shuffle and
  crops) and keeps rows [index * b, (index + 1) * b) of each, padded to the global batch's
  lengths: all processes run the same number of steps with the same array shapes, and together
  see exactly the batches one process would. Each process prepares the whole global batch (N-fold
  host work for exact agreement without a collective). The last evaluation batch is padded with
  empty rows, so no utterance is dropped.
  """
  index, count = process or (jax.process_index(), jax.process_count())
  if len(sources) != 1:
    raise ValueError(f"speech tasks read exactly one corpus, got {len(sources)} sources")
  if bucket < units.DOWNSAMPLE or bucket % units.DOWNSAMPLE:
    raise ValueError(f"bucket must be a positive multiple of {units.DOWNSAMPLE} samples, got "
                     f"{bucket}")
  source = sources[0]
  recs = records[0] if records is not None else input_pipeline.load_source(source, split,
                                                                           data_dir)
  if len(recs) == 0:
    raise ValueError(f"split {split!r} of {source.name} is empty")
  grid = MFCC_GRID if records is not None else mfcc_grid(
      input_pipeline.source_metadata(source, data_dir))
  ds = grain.MapDataset.source(recs)
  if train:
    ds = ds.shuffle(seed=seed).repeat(None)
  prepare = PrepareUtterance(task, normalization, stats[0] if stats else None, max_len=max_len,
                             train=train, grid=grid, with_reference=with_reference)
  ds = ds.random_map(prepare, seed=seed)
  global_batch = batch_size * count
  rows = None if train else global_batch
  keep = slice(index * batch_size, (index + 1) * batch_size) if count > 1 else None

  def batch_fn(examples):
    return collate(examples, bucket=bucket, rows=rows, keep=keep)

  return ds.batch(global_batch, drop_remainder=train, batch_fn=batch_fn).to_iter_dataset()
