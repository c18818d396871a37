"""Tests of the emg2pose builder on dummy sessions: counts, values, Beam == generator, bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from data_builders import build as build_lib
from data_builders import emg_common, testing
from data_builders.emg2pose import emg2pose_dataset_builder as e2p

DUMMY_DIR = Path(__file__).resolve().parent / "dummy_data"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  return testing.build_and_read("emg2pose", DUMMY_DIR, tmp_path_factory.mktemp("e2p"))


def test_split_sizes_shapes_and_metadata(built):
  builder, records = built
  # 2200 samples per session -> windows at 0, 500, 1000; 2 train, 1 val, 1 test sessions.
  assert testing.split_sizes(records) == {"train": 6, "validation": 3, "test": 3}
  assert dict(builder.info.metadata) == {
      "sample_rate_hz": 2000.0, "num_channels": 16, "window": 1000, "stride": 500,
      "sessions": 4, "sessions_missing": 0, "files_not_in_metadata": 0}
  for record in records["train"]:
    assert record["emg"].shape == (16, 1000) and record["emg"].dtype == np.float32
    assert record["repetition"] == -1
  assert {int(r["subject"]) for r in records["train"]} == {emg_common.stable_id("0000000000")}


def test_window_values_match_scipy(built):
  _, records = built
  path = next((DUMMY_DIR / e2p.DATA_FOLDER).glob("*recording-2_left.hdf5"))
  with h5py.File(path) as handle:
    emg = handle["emg2pose/timeseries"]["emg"].T.astype(np.float64)
  filtered = testing.reference_filter(emg, 2000, (20, 450), 50)
  expected = [filtered[:, s:s + 1000] for s in (0, 500, 1000)]
  got = sorted((r["emg"] for r in records["validation"]),
               key=lambda w: int(np.argmin([np.abs(w - e).max() for e in expected])))
  for window, reference in zip(got, expected):
    np.testing.assert_allclose(window, reference, atol=1e-5, rtol=1e-4)
  assert abs(np.mean(got)) < 0.05   # the +5 offset of the dummy signal is gone


def test_beam_direct_runner_equals_generator_path(built, tmp_path):
  pytest.importorskip("apache_beam")
  _, records = built
  _, beam_records = testing.build_and_read("emg2pose", DUMMY_DIR, tmp_path,
                                           beam_pipeline_options="runner=DirectRunner")
  testing.assert_same_records(records, beam_records)


def test_by_user_splits_are_subject_disjoint(tmp_path):
  _, records = testing.build_and_read("emg2pose", DUMMY_DIR, tmp_path, config="by_user")
  testing.assert_subject_disjoint(records)


@pytest.fixture()
def manual_copy(tmp_path):
  shutil.copytree(DUMMY_DIR / e2p.DATA_FOLDER, tmp_path / "manual" / e2p.DATA_FOLDER)
  return tmp_path / "manual", tmp_path / "manual" / e2p.DATA_FOLDER


def test_missing_session_is_counted(manual_copy, tmp_path):
  manual, folder = manual_copy
  next(folder.glob("*recording-1_right.hdf5")).unlink()
  builder = build_lib.build("emg2pose", manual_dir=manual, data_dir=tmp_path / "tfds")
  assert builder.info.splits["train"].num_examples == 3
  assert builder.info.metadata["sessions_missing"] == 1


@pytest.mark.parametrize("damage, problem", [
    ("truncate", "unreadable HDF5"),
    ("nan", "non-finite"),
    ("channels", r"emg has shape \(2200, 8\)"),
    ("no_csv", "metadata.csv is missing"),
])
def test_bad_input_names_file_and_leaves_nothing(manual_copy, tmp_path, damage, problem):
  manual, folder = manual_copy
  path = next(folder.glob("*recording-3_right.hdf5"))
  if damage == "truncate":
    path.write_bytes(path.read_bytes()[:4000])
  elif damage == "no_csv":
    (folder / "metadata.csv").unlink()
    path = folder / "metadata.csv"
  else:
    with h5py.File(path, "r+") as handle:
      rows = handle["emg2pose/timeseries"][()]
      if damage == "nan":
        rows["emg"][100, 3] = np.nan
        handle["emg2pose/timeseries"][...] = rows
      else:
        del handle["emg2pose/timeseries"]
        dtype = np.dtype([("time", "<f8"), ("emg", "<f4", (8,))])
        small = np.zeros(rows.shape, dtype)
        small["time"] = rows["time"]
        handle["emg2pose"].create_dataset("timeseries", data=small)
  testing.assert_build_fails("emg2pose", manual, tmp_path / "tfds", problem, path.name)
