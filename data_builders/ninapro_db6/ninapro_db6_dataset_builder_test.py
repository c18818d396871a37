"""Tests of the ninapro_db6 builder on dummy files: counts, labels, sessions, values, Beam, errors.
"""

from __future__ import annotations

import collections
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from data_builders import build as build_lib
from data_builders import emg_common, testing

DUMMY_DIR = Path(__file__).resolve().parent / "dummy_data"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  return testing.build_and_read("ninapro_db6", DUMMY_DIR, tmp_path_factory.mktemp("db6"))


def test_repetition_split_sizes_labels_and_sessions(built):
  builder, records = built
  # Per file (labels 3 samples short, so the last rest holds no window): rep 1 has the leading
  # rest + grasp + rest = 3 windows, reps 2-11 two each, rep 12 only its grasp.
  assert testing.split_sizes(records) == {"train": 3 * 17, "validation": 3 * 4, "test": 3 * 3}
  assert testing.ids_by_split(records, "repetition") == {
      "train": set(range(1, 9)), "validation": {9, 10}, "test": {11, 12}}
  by_subject = collections.Counter((int(r["subject"]), int(r["label"]), int(r["session"]))
                                   for r in records["validation"])
  # Raw grasp 3 -> class 2, raw 11 -> class 7; session = (day - 1) * 2 + time.
  assert by_subject == {(1, 2, 1): 2, (1, 0, 1): 2, (7, 7, 8): 2, (7, 0, 8): 2, (9, 2, 9): 2,
                        (9, 0, 9): 2}
  assert records["train"][0]["emg"].shape == (14, 1000)
  assert records["train"][0]["emg"].dtype == np.float32
  assert builder.info.features["label"].num_classes == 8
  assert dict(builder.info.metadata) == {"sample_rate_hz": 2000.0, "num_channels": 14,
                                         "window": 1000, "stride": 500}


def test_windows_are_filtered_recordings_without_empty_columns(built):
  _, records = built
  mat = scipy.io.loadmat(DUMMY_DIR / "DB6_s9_b" / "S9_D5_T1.mat")
  emg = np.delete(mat["emg"].astype(np.float64), [8, 9], axis=1)[:-3].T
  filtered = testing.reference_filter(emg, 2000, (20, 450), 50)
  # Test split of subject 9: rep 11 grasp (21000), rep 11 rest (22000), rep 12 grasp (23000).
  got = sorted((r for r in records["test"] if r["subject"] == 9), key=lambda r: int(r["label"]))
  expected = {0: [22000], 2: [21000, 23000]}
  for label, starts in expected.items():
    windows = [r["emg"] for r in got if r["label"] == label]
    for start in starts:
      assert min(np.abs(w - filtered[:, start:start + 1000]).max() for w in windows) < 1e-10
  assert abs(float(np.mean([r["emg"] for r in got]))) < 1e-7   # the 20 uV offset is gone


@pytest.mark.parametrize("config, expected", [
    ("by_subject", {"train": {1}, "validation": {7}, "test": {9}}),
    ("by_day", {"train": {1}, "validation": {7}, "test": {9}}),
])
def test_subject_and_day_splits_keep_files_whole(tmp_path, config, expected):
  _, records = testing.build_and_read("ninapro_db6", DUMMY_DIR, tmp_path, config=config)
  assert testing.assert_subject_disjoint(records) == expected
  assert testing.split_sizes(records) == {"train": 24, "validation": 24, "test": 24}


def test_beam_direct_runner_equals_generator_path(built, tmp_path):
  pytest.importorskip("apache_beam")
  _, records = built
  _, beam_records = testing.build_and_read("ninapro_db6", DUMMY_DIR, tmp_path,
                                           beam_pipeline_options="runner=DirectRunner")
  testing.assert_same_records(records, beam_records)


@pytest.mark.parametrize("damage, problem", [
    ("label", r"restimulus 5 is not one of the corpus's labels"),
    ("channels", r"emg has shape \(\d+, 14\), expected \(T, 16\)"),
    ("nan", "non-finite"),
])
def test_bad_files_name_the_problem(tmp_path, damage, problem):
  source = DUMMY_DIR / "DB6_s7_b" / "S7_D4_T2.mat"
  mat = testing.mat_variables(source)
  if damage == "label":
    mat["restimulus"][1500] = 5
  elif damage == "channels":
    mat["emg"] = mat["emg"][:, :14]
  else:
    mat["emg"][70, 3] = np.nan
  manual = tmp_path / "manual" / "DB6_s7_b"
  manual.mkdir(parents=True)
  scipy.io.savemat(manual / source.name, mat)
  testing.assert_build_fails("ninapro_db6", manual.parent, tmp_path / "tfds", problem,
                             source.name)


def test_manual_dir_without_sessions_is_an_error(tmp_path):
  shutil.copytree(DUMMY_DIR / "DB6_s1_a", tmp_path / "manual" / "other")
  for path in (tmp_path / "manual" / "other").glob("*.mat"):
    path.rename(path.with_name("notes.mat"))
  with pytest.raises(emg_common.CorpusError, match="holds no NinaPro file"):
    build_lib.build("ninapro_db6", manual_dir=tmp_path / "manual", data_dir=tmp_path / "tfds")
