"""Tests of the ninapro_db7 builder on dummy files: counts, label numbering, splits, errors."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from data_builders import testing

DUMMY_DIR = Path(__file__).resolve().parent / "dummy_data"
SPLITS = testing.SPLITS


def test_repetition_protocol_counts_and_global_labels(tmp_path):
  builder, records = testing.build_and_read("ninapro_db7", DUMMY_DIR, tmp_path)
  # Per file: rep 1 = leading rest + 2 x (movement + rest) = 5 windows, reps 2-6 four each.
  assert testing.split_sizes(records) == {"train": 3 * 17, "validation": 3 * 4, "test": 3 * 4}
  assert testing.ids_by_split(records, "repetition") == {
      "train": {1, 2, 3, 4}, "validation": {5}, "test": {6}}
  labels = collections.Counter((int(r["subject"]), int(r["label"])) for r in records["test"])
  # S1 E2 numbered 1, 2 and S19 E2 numbered 18, 19 both give classes 18, 19; S17 E1 gives 1, 2.
  assert labels == {(1, 18): 1, (1, 19): 1, (1, 0): 2, (17, 1): 1, (17, 2): 1, (17, 0): 2,
                    (19, 18): 1, (19, 19): 1, (19, 0): 2}
  assert testing.ids_by_split(records, "session")["train"] == {1, 2}   # the exercise
  assert records["train"][0]["emg"].shape == (12, 1000)
  assert all(np.isfinite(r["emg"]).all() for s in SPLITS for r in records[s])
  assert builder.info.features["label"].num_classes == 41
  assert dict(builder.info.metadata) == {"sample_rate_hz": 2000.0, "num_channels": 12,
                                         "window": 1000, "stride": 500}


def test_by_subject_is_disjoint(tmp_path):
  _, records = testing.build_and_read("ninapro_db7", DUMMY_DIR, tmp_path, config="by_subject")
  assert testing.assert_subject_disjoint(records) == {
      "train": {1}, "validation": {17}, "test": {19}}


@pytest.mark.parametrize("damage, problem", [
    ("label", r"exercise 1 restimulus spans 1..30, which fits neither 1..17 .* nor 1..17"),
    ("mixed", r"exercise 2 restimulus spans 1..30, which fits neither 1..23 .* nor 18..40"),
    ("channels", r"emg has shape \(\d+, 16\), expected \(T, 12\)"),
    ("truncate", "unreadable MAT file"),
    ("missing", r"missing variable\(s\) \['rerepetition'\]"),
])
def test_bad_files_name_the_problem(tmp_path, damage, problem):
  name = "S1_E2_A1.mat" if damage == "mixed" else "S17_E1_A1.mat"
  source = next(DUMMY_DIR.glob(f"*/{name}"))
  path = tmp_path / "manual" / name
  path.parent.mkdir()
  if damage == "truncate":
    path.write_bytes(source.read_bytes()[:30000])
  else:
    mat = testing.mat_variables(source)
    if damage == "label":
      mat["restimulus"][1500] = 30
    elif damage == "mixed":
      mat["restimulus"][1500] = 30       # 30 next to 1, 2: neither numbering
    elif damage == "channels":
      mat["emg"] = np.zeros((mat["emg"].shape[0], 16), np.float32)
    else:
      del mat["rerepetition"]
    scipy.io.savemat(path, mat)
  testing.assert_build_fails("ninapro_db7", path.parent, tmp_path / "tfds", problem, name)
