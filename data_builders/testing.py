"""Helpers shared by the builder tests: build into a temp dir, read splits back, common checks.

They play the part of TFDS's `DatasetBuilderTestCase`, which imports TensorFlow: a build goes
through the project's own `build` command code and splits are read back with `as_data_source`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.io
import scipy.signal

from data_builders import build as build_lib
from data_builders import emg_common, registry

SPLITS = ("train", "validation", "test")
# The real corpora beside the repository (absent in a clone from a public host).
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def need_shared(path: str | Path) -> Path:
  """`path` (real data under ../shared); skips the test naming the missing folder when absent.

  With TINYMYO_REQUIRE_SHARED set (CI keeps ../shared) a missing path fails the test instead.
  """
  path = Path(path)
  if not path.exists():
    missing = path
    while not missing.parent.exists():
      missing = missing.parent
    reason = f"needs {path}, but {missing} does not exist (real data outside the repository)"
    if os.environ.get("TINYMYO_REQUIRE_SHARED", "") not in ("", "0"):
      pytest.fail(f"TINYMYO_REQUIRE_SHARED is set: {reason}")
    pytest.skip(reason)
  return path
Records = dict[str, list[dict[str, Any]]]


def read_splits(name: str, data_dir: str | Path, config: str | None = None,
                splits: tuple[str, ...] = SPLITS) -> Records:
  """Returns every record of the built `splits` as {split: [record, ...]} in stored order."""
  out = {}
  for split in splits:
    source = registry.load_split(name, split, data_dir=data_dir, config=config)
    out[split] = [source[i] for i in range(len(source))]
  return out


def build_and_read(name: str, manual_dir: str | Path, data_dir: str | Path,
                   config: str | None = None, **build_kwargs) -> tuple[Any, Records]:
  """Builds `name` from `manual_dir` into `data_dir`; returns (builder, records of every split)."""
  builder = build_lib.build(name, manual_dir=manual_dir, data_dir=data_dir, config=config,
                            **build_kwargs)
  return builder, read_splits(name, data_dir, config)


def split_sizes(records: Records) -> dict[str, int]:
  """Returns {split: number of records}."""
  return {split: len(items) for split, items in records.items()}


def ids_by_split(records: Records, field: str = "subject") -> dict[str, set[int]]:
  """Returns {split: set of the integer `field` values} (e.g. subjects per split)."""
  return {split: {int(r[field]) for r in items} for split, items in records.items()}


def assert_subject_disjoint(records: Records) -> dict[str, set[int]]:
  """Asserts every split has records and no subject is in two splits; returns the subject sets."""
  subjects = ids_by_split(records)
  assert all(subjects.values()), f"a split has no records: {subjects}"
  names = sorted(subjects)
  for i, first in enumerate(names):
    for second in names[i + 1:]:
      shared = subjects[first] & subjects[second]
      assert not shared, f"subjects {sorted(shared)} are in both {first} and {second}"
  return subjects


def assert_same_records(expected: Records, got: Records) -> None:
  """Asserts both hold the same splits with equal records (every field, bit for bit) in order."""
  assert split_sizes(got) == split_sizes(expected)
  for split, items in expected.items():
    for a, b in zip(items, got[split]):
      assert a.keys() == b.keys()
      for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=f"{split} field {key}")


def assert_build_fails(name: str, manual_dir: str | Path, data_dir: str | Path, problem: str,
                       mentions: str) -> None:
  """Asserts the build fails with a CorpusError naming `mentions` and leaves nothing readable.

  `problem` is a regular expression the error message must match.
  """
  with pytest.raises(emg_common.CorpusError, match=problem) as info:
    build_lib.build(name, manual_dir=manual_dir, data_dir=data_dir)
  assert mentions in str(info.value)
  assert not registry.get_builder(name, data_dir=data_dir).is_prepared()


def reference_filter(x_ct: np.ndarray, rate_hz: float, band_hz: tuple[float, float],
                     notch_hz: float) -> np.ndarray:
  """Independent reference: 4th-order Butterworth band-pass then Q-30 notch, zero-phase in time."""
  sos = np.concatenate([
      scipy.signal.butter(4, band_hz, "bandpass", fs=rate_hz, output="sos"),
      scipy.signal.tf2sos(*scipy.signal.iirnotch(notch_hz, 30, fs=rate_hz))])
  return scipy.signal.sosfiltfilt(sos, np.asarray(x_ct, np.float64), axis=-1)


def mat_variables(path: str | Path) -> dict[str, np.ndarray]:
  """Returns the variables of a MAT v5 file without scipy's `__header__`-style entries."""
  return {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
