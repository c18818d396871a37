"""Tests of the ninapro_db8 builder on dummy files: counts, DoA targets, NaN rows, splits, errors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from data_builders import testing
from data_builders.ninapro_db8 import ninapro_db8_dataset_builder as db8

DUMMY_DIR = Path(__file__).resolve().parent / "dummy_data"
SPLITS = testing.SPLITS


def _count(length, window, stride):
  return (length - window) // stride + 1 if length >= window else 0


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  return testing.build_and_read("ninapro_db8", DUMMY_DIR, tmp_path_factory.mktemp("db8"))


def test_eq_s2_matrix():
  matrix = db8.dof_to_doa_matrix()
  assert matrix.shape == (5, 18)
  np.testing.assert_allclose(matrix.sum(axis=1), [0.193, 1.0, 1.0, 1.0, 1.0], atol=1e-12)
  assert np.count_nonzero(matrix) == 13 and not matrix[:, [8, 11, 14, 15, 17]].any()


@pytest.mark.parametrize("window", [1000, 200])
def test_split_sizes_follow_acquisitions_and_nan_rows(tmp_path, window):
  config = f"w{window}"
  builder, records = testing.build_and_read("ninapro_db8", DUMMY_DIR, tmp_path, config=config)
  stride = window // 2
  # S1 A1: NaN glove rows 3000-3049 cut [0, 11500) in two; S7 A2: repetition 10 (the last 1100
  # samples, from 10400) is validation; S9 A3 (2700 samples) is test.
  expected = {
      "train": (_count(3000, window, stride) + _count(11500 - 3050, window, stride)
                + _count(10400, window, stride)),
      "validation": _count(1100, window, stride), "test": _count(2700, window, stride)}
  assert testing.split_sizes(records) == expected
  assert records["test"][0]["emg"].shape == (16, window)
  assert records["test"][0]["angles"].shape == (5, window)
  assert dict(builder.info.metadata) == {"sample_rate_hz": 2000.0, "num_channels": 16,
                                         "window": window, "stride": stride}
  assert {int(r["repetition"]) for r in records["validation"]} == {10}
  assert {int(r["session"]) for r in records["train"]} == {1, 2}


def test_angles_are_the_doa_map_of_the_glove(built):
  _, records = built
  glove = scipy.io.loadmat(DUMMY_DIR / "S9_E1_A3.mat")["glove"].astype(np.float64).T
  doa = db8.dof_to_doa_matrix() @ glove
  starts = range(0, 2700 - 1000 + 1, 500)
  matched = set()
  for record in records["test"]:
    start = min(starts, key=lambda s: np.abs(record["angles"] - doa[:, s:s + 1000]).max())
    np.testing.assert_allclose(record["angles"], doa[:, start:start + 1000], atol=1e-4)
    matched.add(start)
  assert matched == {0, 500, 1000, 1500}
  every = [r for s in SPLITS for r in records[s]]
  assert all(np.isfinite(r["angles"]).all() and np.isfinite(r["emg"]).all() for r in every)


def test_by_subject_is_disjoint(tmp_path):
  _, records = testing.build_and_read("ninapro_db8", DUMMY_DIR, tmp_path,
                                      config="w1000_by_subject")
  assert testing.assert_subject_disjoint(records) == {
      "train": {1}, "validation": {7}, "test": {9}}


@pytest.mark.parametrize("damage, problem", [
    ("glove", r"glove has shape \(\d+, 22\), expected \(\d+, 18\)"),
    ("label", "restimulus 12 outside 0..9"),
    ("nan", "non-finite"),
    ("truncate", "unreadable MAT file"),
])
def test_bad_files_name_the_problem(tmp_path, damage, problem):
  source = DUMMY_DIR / "S9_E1_A3.mat"
  path = tmp_path / "manual" / source.name
  path.parent.mkdir()
  if damage == "truncate":
    path.write_bytes(source.read_bytes()[:9000])
  else:
    mat = testing.mat_variables(source)
    if damage == "glove":
      mat["glove"] = np.zeros((mat["glove"].shape[0], 22), np.float32)
    elif damage == "label":
      mat["restimulus"][900] = 12
    else:
      mat["emg"][10, 0] = np.inf
    scipy.io.savemat(path, mat)
  testing.assert_build_fails("ninapro_db8", path.parent, tmp_path / "tfds", problem, source.name)
