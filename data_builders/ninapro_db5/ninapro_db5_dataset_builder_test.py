"""Tests of the ninapro_db5 builder: dummy files (exact counts, splits) and the real DB5 files."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from data_builders import ninapro, testing

HERE = Path(__file__).resolve().parent
DUMMY_DIR = HERE / "dummy_data"
REAL_DB5 = testing.SHARED_DATA / "ninapro_samples" / "db5"
SPLITS = testing.SPLITS


def test_dummy_repetition_protocol(tmp_path):
  builder, records = testing.build_and_read("ninapro_db5", DUMMY_DIR, tmp_path)
  # Per file and repetition: 2 movements x 3 windows + 2 rests x 2 windows (rest after each
  # movement takes its repetition; the leading rest takes repetition 1) = 10, +2 for rep 1.
  per_rep = {1: 12, 2: 10, 3: 10, 4: 10, 5: 10, 6: 10}
  expected = {"train": 3 * (per_rep[1] + per_rep[2] + per_rep[5]),
              "validation": 3 * (per_rep[4] + per_rep[6]), "test": 3 * per_rep[3]}
  assert testing.split_sizes(records) == expected
  assert testing.ids_by_split(records, "repetition") == {
      "train": {1, 2, 5}, "validation": {4, 6}, "test": {3}}
  labels = collections.Counter(int(r["label"]) for r in records["test"])
  assert labels == {0: 3 * 4, 13: 3 * 3, 14: 3 * 3}   # exercise 2 labels 1, 2 -> 13, 14
  assert builder.info.features["label"].num_classes == 53
  assert records["train"][0]["emg"].shape == (16, 200)
  assert dict(builder.info.metadata) == {"sample_rate_hz": 200.0, "num_channels": 16,
                                         "window": 200, "stride": 50}


def test_dummy_by_subject_is_disjoint(tmp_path):
  _, records = testing.build_and_read("ninapro_db5", DUMMY_DIR, tmp_path, config="by_subject")
  assert testing.assert_subject_disjoint(records) == {
      "train": {1}, "validation": {7}, "test": {9}}


def test_real_db5_counts_match_runs(tmp_path):
  testing.need_shared(REAL_DB5)
  _, records = testing.build_and_read("ninapro_db5", REAL_DB5, tmp_path)
  total = 0
  for path in sorted(REAL_DB5.glob("*.mat")):
    mat = scipy.io.loadmat(path)
    code = mat["restimulus"].ravel() * 100 + mat["rerepetition"].ravel()
    edges = np.concatenate([[0], np.flatnonzero(np.diff(code)) + 1, [code.size]])
    lengths = np.diff(edges)
    total += int(sum((n - 200) // 50 + 1 for n in lengths if n >= 200))
  every = [r for s in SPLITS for r in records[s]]
  assert len(every) == total == 4570
  assert {int(r["label"]) for r in every} == set(range(13))   # E1: rest + 12 finger movements
  assert {int(r["subject"]) for r in every} == {1, 5}
  assert all(np.isfinite(r["emg"]).all() for r in every)
  assert {int(r["repetition"]) for r in records["test"]} == {3}


def test_v73_mat_is_read_like_v5(tmp_path):
  h5py = pytest.importorskip("h5py")
  emg = np.arange(30, dtype=np.float32).reshape(10, 3)
  path = tmp_path / "S1_E1_A1.mat"
  with h5py.File(path, "w", userblock_size=512) as handle:
    handle["emg"] = emg.T                     # MATLAB stores column-major
  with open(path, "r+b") as handle:
    handle.write(ninapro.MAT73_MARKER.ljust(116, b" "))
  np.testing.assert_array_equal(ninapro.load_mat(str(path), ("emg",))["emg"], emg)


@pytest.mark.parametrize("damage, problem", [
    ("truncate", "unreadable MAT file"),
    ("channels", r"emg has shape \(\d+, 8\)"),
    ("nan", "non-finite"),
    ("label", "restimulus 40 outside 0..23"),
])
def test_bad_files_name_the_problem(tmp_path, damage, problem):
  source = DUMMY_DIR / "s9" / "S9_E2_A1.mat"
  path = tmp_path / "manual" / "S9_E2_A1.mat"
  path.parent.mkdir()
  if damage == "truncate":
    path.write_bytes(source.read_bytes()[:20000])
  else:
    mat = testing.mat_variables(source)
    if damage == "channels":
      mat["emg"] = mat["emg"][:, :8]
    elif damage == "nan":
      mat["emg"][5, 2] = np.nan
    else:
      mat["restimulus"][400] = 40
    scipy.io.savemat(path, mat)
  testing.assert_build_fails("ninapro_db5", path.parent, tmp_path / "tfds", problem,
                             "S9_E2_A1.mat")
