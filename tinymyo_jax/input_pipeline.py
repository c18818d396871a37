"""grain input pipelines over built TFDS corpora: shuffle, normalize, pad channels, mix, batch.

Every pipeline is deterministic given its seed, checkpointable (the iterator's state is saved with
the train state) and sharded per JAX process (each process reads its rows of every global batch).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import grain
import jax
import numpy as np

NORMALIZATIONS = ("minmax", "zscore", "standardize", "none")


@dataclasses.dataclass(frozen=True)
class Source:
  """One built corpus: TFDS name, builder config, mixture weight, and two options for corpora
  added to pretraining.

  channel_group: > 0 cuts every C-channel window into C / channel_group windows of consecutive
    channels (NinaPro DB5's two 8-channel Myo armbands become two 8-channel windows).
  split: a split expression this source always trains on, in place of the run's train split;
    such a source takes no part in evaluation (another corpus that only adds pretraining data).
  """

  name: str
  config: str | None = None
  weight: float = 1.0
  channel_group: int = 0
  split: str = ""

  def train_split(self, default: str) -> str:
    """The split expression this source trains on (and takes its channel statistics from)."""
    return self.split or default


# ----------------------------------------------------------------------------- transforms


def config_sources(config) -> list[Source]:
  """The `Source`s of a run config's `data.sources` entries."""
  return [Source(*spec) for spec in config.data.sources]


def minmax_per_channel(x_ct: np.ndarray) -> np.ndarray:
  """Maps each channel of a window to [-1, 1] by its own min and max."""
  lo = x_ct.min(axis=-1, keepdims=True)
  hi = x_ct.max(axis=-1, keepdims=True)
  return ((x_ct - lo) / (hi - lo + 1e-8) * 2.0 - 1.0).astype(np.float32)


def zscore_per_channel(x_ct: np.ndarray) -> np.ndarray:
  """Zero mean, unit variance per channel over the window."""
  mean = x_ct.mean(axis=-1, keepdims=True)
  std = x_ct.std(axis=-1, keepdims=True)
  return ((x_ct - mean) / (std + 1e-6)).astype(np.float32)


def standardize(x_ct: np.ndarray, mean_c: np.ndarray, std_c: np.ndarray) -> np.ndarray:
  """Per-channel z-score with fixed (training-set) statistics: keeps relative channel levels."""
  return ((x_ct - mean_c[:, None]) / std_c[:, None]).astype(np.float32)


def channel_stats(records, max_records: int = 2048, seed: int = 0) -> dict[str, list[float]]:
  """Per-channel mean and std over every sample of (a seeded sample of) the records of a split.

  Each record's "emg" is [C, T]; T may differ between records (windows or whole utterances).
  Records are merged one at a time (Chan et al.'s pairwise update), so memory stays at one
  record. A channel without spread gets std 1.
  """
  n = len(records)
  if n == 0:
    raise ValueError("cannot compute channel statistics of an empty split")
  idx = np.sort(np.random.default_rng(seed).permutation(n)[:max_records])
  count, mean, m2 = 0, 0.0, 0.0
  for i in idx:
    x = np.asarray(records[int(i)]["emg"], np.float64)
    k = x.shape[1]
    if not k:
      continue
    mean_k = x.mean(axis=1)
    delta = mean_k - mean
    total = count + k
    mean = mean + delta * (k / total)
    m2 = m2 + ((x - mean_k[:, None]) ** 2).sum(axis=1) + delta * delta * (count * k / total)
    count = total
  std = np.sqrt(m2 / count)
  return {"mean": mean.tolist(), "std": np.where(std > 0, std, 1.0).tolist()}


def pad_channels(x_ct: np.ndarray, num_channels: int) -> np.ndarray:
  """Zero-pads the channel axis up to `num_channels` (after normalization, so pads stay 0)."""
  c = x_ct.shape[0]
  if c > num_channels:
    raise ValueError(f"window has {c} channels, more than the model's {num_channels}")
  if c == num_channels:
    return x_ct
  return np.concatenate([x_ct, np.zeros((num_channels - c, x_ct.shape[1]), x_ct.dtype)])


class PrepareWindow(grain.transforms.Map):
  """Record -> {"emg": normalized, channel-padded float32 [C, T], other numeric fields}."""

  def __init__(self, normalization: str, num_channels: int | None, keep: Sequence[str],
               stats: dict[str, list[float]] | None = None):
    if normalization not in NORMALIZATIONS:
      raise ValueError(f"unknown normalization {normalization!r}; expected {NORMALIZATIONS}")
    if normalization == "standardize" and not stats:
      raise ValueError("normalization 'standardize' needs channel statistics (mean, std)")
    self.normalization = normalization
    self.stats = stats and (np.asarray(stats["mean"], np.float32),
                            np.asarray(stats["std"], np.float32))
    self.num_channels = num_channels
    self.keep = tuple(keep)

  def map(self, record):
    x = np.asarray(record["emg"], np.float32)
    if self.normalization == "minmax":
      x = minmax_per_channel(x)
    elif self.normalization == "zscore":
      x = zscore_per_channel(x)
    elif self.normalization == "standardize":
      if x.shape[0] != self.stats[0].shape[0]:
        raise ValueError(f"window has {x.shape[0]} channels, the statistics "
                         f"{self.stats[0].shape[0]}")
      x = standardize(x, *self.stats)
    if self.num_channels:
      x = pad_channels(x, self.num_channels)
    out = {"emg": x}
    for k in self.keep:
      out[k] = np.asarray(record[k], np.float32 if k in ("angles", "mfcc") else np.int32)
    return out


@dataclasses.dataclass(frozen=True)
class Augmentation:
  """Training-time augmentations of normalized windows, each drawn per window.

  rotate: circular shift of the channel axis by a uniform -rotate..rotate channels (an armband
    worn rotated; only for one circular armband such as the 8-channel Myo). Keep it small: a
    shift of half the ring maps wrist flexion onto extension (UCI-EMG, RESULTS.md).
  scale: amplitude gain exp(u), u ~ U(-scale, scale) (0 = off), one gain per window.
  jitter: circular time shift by a uniform -jitter..jitter samples (0 = off).
  """

  rotate: int = 0
  scale: float = 0.0
  jitter: int = 0

  def __post_init__(self):
    if self.rotate < 0 or self.scale < 0 or self.jitter < 0:
      raise ValueError(f"augmentation rotate, scale and jitter must be >= 0, got "
                       f"rotate={self.rotate}, scale={self.scale}, jitter={self.jitter}")

  @property
  def active(self) -> bool:
    return bool(self.rotate or self.scale or self.jitter)


class Augment(grain.transforms.RandomMap):
  """Applies an `Augmentation` to the "emg" of a prepared record (deterministic per index)."""

  def __init__(self, augmentation: Augmentation):
    self.augmentation = augmentation

  def random_map(self, element, rng: np.random.Generator):
    a, x = self.augmentation, element["emg"]
    if a.rotate:
      x = np.roll(x, int(rng.integers(-a.rotate, a.rotate + 1)), axis=0)
    if a.scale:
      x = x * np.float32(np.exp(rng.uniform(-a.scale, a.scale)))
    if a.jitter:
      x = np.roll(x, int(rng.integers(-a.jitter, a.jitter + 1)), axis=1)
    return {**element, "emg": np.ascontiguousarray(x, np.float32)}


# ----------------------------------------------------------------------------- datasets


class SyntheticSource:
  """Deterministic random windows, for benchmarks and tests without a built corpus.

  Spec "<C>x<T>:<N>[:<K>]": N records of C x T Gaussian noise (seeded per index and split) with
  labels i % K.
  """

  def __init__(self, spec: str, split: str):
    try:
      shape, num, *classes = spec.split(":")
      self.channels, self.samples = (int(v) for v in shape.split("x"))
      self.num = int(num)
      self.classes = int(classes[0]) if classes else 6
    except ValueError as e:
      raise ValueError(f"bad synthetic spec {spec!r}; expected '<C>x<T>:<N>[:<K>]'") from e
    self.salt = sum(map(ord, split))

  def __len__(self):
    return self.num

  def __getitem__(self, i):
    rng = np.random.default_rng((self.salt, int(i)))
    emg = rng.standard_normal((self.channels, self.samples), dtype=np.float32)
    return {"emg": emg, "label": int(i) % self.classes, "subject": 0}


# In-memory windows (e.g. from the scikit-learn estimators): numpy arrays registered under a name
# and read through the same `load_source` / `source_metadata` as a built corpus, so the training
# loop needs no second code path. A temporary TFDS dataset would serve too, but it would copy
# windows that are already in memory to array_record shards and need a builder per call.
IN_MEMORY = "memory"  # Source(name=IN_MEMORY, config=<key given to register_arrays>)
_ARRAYS: dict[str, dict] = {}


class ArrayRecords:
  """Random access over window arrays: record i is {"emg": emg[i], field: values[i], ...}."""

  def __init__(self, emg: np.ndarray, **fields: np.ndarray):
    self.emg = np.asarray(emg, np.float32)
    if self.emg.ndim != 3:
      raise ValueError(f"windows must be [N, channels, samples], got shape {self.emg.shape}")
    for name, values in fields.items():
      if len(values) != len(self.emg):
        raise ValueError(f"field {name!r} has {len(values)} entries for {len(self.emg)} windows")
    self.fields = {k: np.asarray(v) for k, v in fields.items()}

  def __len__(self):
    return len(self.emg)

  def __getitem__(self, i):
    i = int(i)
    return {"emg": self.emg[i], **{k: v[i] for k, v in self.fields.items()}}


def register_arrays(key: str, splits: dict[str, ArrayRecords], metadata: dict) -> Source:
  """Makes `splits` readable as the corpus `Source(IN_MEMORY, key)`; returns that source."""
  _ARRAYS[key] = {"splits": dict(splits), "metadata": dict(metadata)}
  return Source(IN_MEMORY, key)


def unregister_arrays(key: str) -> None:
  _ARRAYS.pop(key, None)


def _registered(key: str | None) -> dict:
  if key not in _ARRAYS:
    raise ValueError(f"no in-memory windows registered as {key!r} (register_arrays first); "
                     f"registered: {sorted(_ARRAYS)}")
  return _ARRAYS[key]


class RecordView:
  """Random access over concatenated sources, keeping only records whose fields match.

  `where` maps a field to the set of values a kept record may have. `values` (one dict per part,
  field -> array over the part's records) gives those fields without reading every record again.
  """

  def __init__(self, parts, where: dict[str, frozenset[int]] | None = None, values=None):
    self.parts = list(parts)
    index = [(p, i) for p, part in enumerate(self.parts) for i in range(len(part))]
    if where:
      values = values or [read_fields(part, tuple(where)) for part in self.parts]
      index = [(p, i) for p, i in index
               if all(int(values[p][k][i]) in v for k, v in where.items())]
    self.index = index

  def __len__(self):
    return len(self.index)

  def __getitem__(self, i):
    p, j = self.index[i]
    return self.parts[p][j]


def read_fields(records, fields: tuple[str, ...]) -> dict[str, np.ndarray]:
  """field -> values over all records (one pass: each record is read and parsed once, and only
  its fields are kept, not its EMG)."""
  out = {f: np.empty(len(records), np.int64) for f in fields}
  for i in range(len(records)):
    record = records[i]
    for f in fields:
      out[f][i] = int(record[f])
  return out


# (split directory, its mtime, split, fields) -> field values: a cache of files a run only reads.
_FIELDS_OF_BUILT_SPLITS: dict[tuple, dict[str, np.ndarray]] = {}


def built_split_fields(records, fields: tuple[str, ...]) -> dict[str, np.ndarray]:
  """`read_fields` of a built TFDS split, read once per process and build: a filtered split (e.g.
  'train|subject=1-16') is loaded by the training pipeline, the channel statistics, evaluation
  and the test report, each of which would otherwise parse every record again."""
  info_dir = getattr(getattr(records, "dataset_info", None), "data_dir", None)
  if info_dir is None:
    return read_fields(records, fields)
  key = (os.path.abspath(info_dir), os.stat(info_dir).st_mtime_ns, str(records.split), fields)
  if key not in _FIELDS_OF_BUILT_SPLITS:  # a rebuild writes a new directory (new mtime)
    _FIELDS_OF_BUILT_SPLITS[key] = read_fields(records, fields)
  return _FIELDS_OF_BUILT_SPLITS[key]


class ChannelGroups:
  """Random access that cuts every window into groups of `size` consecutive channels."""

  def __init__(self, records, size: int):
    channels = np.shape(records[0]["emg"])[0] if len(records) else size
    if size < 1 or channels % size:
      raise ValueError(f"channel_group={size} does not divide the windows' {channels} channels")
    self.records, self.size, self.groups = records, size, channels // size

  def __len__(self):
    return len(self.records) * self.groups

  def __getitem__(self, i):
    record, group = divmod(int(i), self.groups)
    out = dict(self.records[record])
    out["emg"] = np.asarray(out["emg"])[group * self.size:(group + 1) * self.size]
    return out


def parse_values(text: str, expr: str) -> frozenset[int]:
  """'1-16+20' -> {1, ..., 16, 20}: '+'-joined integers and inclusive ranges."""
  values = set()
  for item in text.split("+"):
    lo, dash, hi = item.strip().partition("-")
    try:
      first, last = (int(lo), int(hi)) if dash and lo else (int(item), int(item))
    except ValueError:
      raise ValueError(f"bad value {item.strip()!r} in split {expr!r}; expected an integer or "
                       f"an inclusive range like 1-24, joined by '+'") from None
    if last < first:
      raise ValueError(f"empty range {item.strip()!r} in split {expr!r}")
    values.update(range(first, last + 1))
  return frozenset(values)


class Excluding(frozenset):
  """A set of values that a kept record must NOT have (`field!=values`): `in` is inverted, and
  it never equals the plain set of the same values."""

  def __contains__(self, value):
    return not super().__contains__(value)

  def __eq__(self, other):
    return type(other) is Excluding and frozenset.__eq__(self, other)

  def __ne__(self, other):
    return not self == other

  __hash__ = frozenset.__hash__

  def __repr__(self):
    return f"Excluding({sorted(self)})"


def parse_split(expr: str) -> tuple[list[str], dict[str, frozenset[int]]]:
  """Parses a split expression into (split names, {field: allowed values}).

  'train+validation|subject=1-24,repetition=1' -> (['train', 'validation'],
  {'subject': {1..24}, 'repetition': {1}}). Values are integers, inclusive ranges `a-b`, or
  several of them joined by '+' (`subject=1-16+20`); a record is kept when every field matches.
  `field!=values` keeps the records whose field is none of the values (an `Excluding` set),
  e.g. 'train|subject!=3+7'.
  """
  names, _, cond = expr.partition("|")
  where = {}
  for item in filter(None, cond.split(",")):
    field, eq, value = item.partition("=")
    negate = field.endswith("!")
    field = field.removesuffix("!")
    if not eq or not field.strip() or not value.strip():
      raise ValueError(f"bad split selector {item!r} in {expr!r}; expected field=values or "
                       f"field!=values")
    values = parse_values(value, expr)
    where[field.strip()] = Excluding(values) if negate else values
  return [n.strip() for n in names.split("+")], where


def load_source(source: Source, split: str, data_dir: str):
  """Random-access records of a built corpus split expression (raises if it was not built).

  `split` is a TFDS split name, several joined by '+', optionally followed by '|field=values,...'
  to keep only matching records (e.g. 'train+validation+test|subject=1-24', see `parse_split`).
  """
  if source.name == "synthetic":
    records = SyntheticSource(source.config or "8x1000:256", split)
  elif source.name == IN_MEMORY:
    splits = _registered(source.config)["splits"]
    names, where = parse_split(split)
    unknown = [n for n in names if n not in splits]
    if unknown:
      raise ValueError(f"in-memory windows {source.config!r} have no split {unknown}; "
                       f"they have {sorted(splits)}")
    records = RecordView([splits[n] for n in names], where)
  else:
    from data_builders import registry  # local: keeps the library importable without builders
    names, where = parse_split(split)
    parts = [registry.load_split(source.name, n, data_dir=data_dir, config=source.config)
             for n in names]
    values = where and [built_split_fields(part, tuple(sorted(where))) for part in parts]
    records = parts[0] if len(parts) == 1 and not where else RecordView(parts, where, values)
  return ChannelGroups(records, source.channel_group) if source.channel_group else records


def source_metadata(source: Source, data_dir: str) -> dict:
  """The builder's metadata (sample_rate_hz, num_channels, window, stride)."""
  if source.name == "synthetic":
    synthetic = SyntheticSource(source.config or "8x1000:256", "train")
    return {"num_channels": synthetic.channels, "window": synthetic.samples}
  if source.name == IN_MEMORY:
    return dict(_registered(source.config)["metadata"])
  from data_builders import registry
  return dict(registry.get_builder(source.name, data_dir=data_dir, config=source.config)
              .info.metadata or {})


class GlobalBatchRows(grain.MapDataset):
  """One process's rows of every global batch: elements [g*G + start, g*G + start + b) for
  g = 0, 1, ... (G = global batch, b = rows per process); a last partial global batch is dropped.

  Several processes then read disjoint records of the same global stream, and their local batches
  together are exactly the batch one process would draw (same shuffle, mixture and augmentation
  draws per element), so N processes train like one.
  """

  _MUTATES_ELEMENT_SPEC = False

  def __init__(self, parent: grain.MapDataset, global_batch: int, start: int, rows: int):
    super().__init__(parent)
    self.global_batch, self.start, self.rows = global_batch, start, rows

  def __len__(self) -> int:
    return len(self._parent) // self.global_batch * self.rows

  def __getitem__(self, index):
    if isinstance(index, slice):
      return self.slice(index)
    g, r = divmod(index, self.rows)
    return self._parent[g * self.global_batch + self.start + r]

  def __str__(self):
    return f"GlobalBatchRows(global_batch={self.global_batch}, start={self.start})"


def make_dataset(sources: Sequence[Source], split: str, *, data_dir: str, batch_size: int,
                 seed: int, train: bool, normalization: str = "minmax",
                 num_channels: int | None = None, keep: Sequence[str] = (),
                 records=None, stats: Sequence[dict] | None = None,
                 augmentation: Augmentation | None = None,
                 process: tuple[int, int] | None = None) -> grain.IterDataset:
  """Batched pipeline over one corpus or a weighted mixture of several.

  train=True: shuffled, repeated forever, full batches only. train=False: one ordered pass, the
  last batch may be short. `records` may supply already-loaded random-access sources (one per
  entry of `sources`), e.g. in tests. `stats` (one dict per source, from `channel_stats` on its
  training split) is needed by 'standardize'. `augmentation` applies to training pipelines only.

  `batch_size` is per process. With `process` = (index, count) (default: this JAX process's),
  count > 1, every process builds the same global stream and reads rows [index*b, (index+1)*b)
  of each global batch of count*b (`GlobalBatchRows`): every process runs the same number of
  steps whatever the record counts, and a partial last global batch is dropped, on all processes
  alike (one process skips its short last eval batch too).
  """
  index, count = process or (jax.process_index(), jax.process_count())
  if not sources:
    raise ValueError("no data sources given")
  parts, weights = [], []
  for i, source in enumerate(sources):
    if source.split and not train:
      continue  # a training-only source
    source_split = source.train_split(split)
    recs = records[i] if records is not None else load_source(source, source_split, data_dir)
    if len(recs) == 0:
      raise ValueError(f"split {source_split!r} of {source.name} is empty")
    ds = grain.MapDataset.source(recs)
    if train:
      ds = ds.shuffle(seed=seed + 1000 * i).repeat(None)
    prepare = PrepareWindow(normalization, num_channels, keep, stats[i] if stats else None)
    ds = ds.map(prepare)
    if train and augmentation is not None and augmentation.active:
      ds = ds.random_map(Augment(augmentation), seed=seed + 1000 * i + 1)
    parts.append(ds)
    weights.append(source.weight)
  if not parts:
    raise ValueError(f"every source is training-only (has its own split); none can serve "
                     f"split {split!r}")
  if len(parts) > 1:
    ds = grain.MapDataset.mix(parts, weights=weights)
  else:
    ds = parts[0]
  if count > 1:
    ds = GlobalBatchRows(ds, batch_size * count, index * batch_size, batch_size)
  ds = ds.batch(batch_size, drop_remainder=train)
  return ds.to_iter_dataset()
