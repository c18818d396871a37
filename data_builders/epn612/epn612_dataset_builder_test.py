"""Tests of the epn612 builder on dummy user JSON: splits, padding counts, values, errors."""

from __future__ import annotations

import collections
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from data_builders import testing
from data_builders.epn612 import epn612_dataset_builder as epn

DUMMY_DIR = Path(__file__).resolve().parent / "dummy_data"
ROOT = DUMMY_DIR / epn.ROOT_FOLDER


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  return testing.build_and_read("epn612", DUMMY_DIR, tmp_path_factory.mktemp("epn"))


def test_tinymyo_split_sizes_labels_and_counts(built):
  builder, records = built
  # Training users 1, 10: 12 labelled recordings per block; testing user 1: 11 per gesture.
  assert testing.split_sizes(records) == {"train": 24 + 60, "validation": 24, "test": 6}
  test_labels = collections.Counter(int(r["label"]) for r in records["test"])
  assert test_labels == {label: 1 for label in range(6)}
  assert {int(r["subject"]) for r in records["test"]} == {307}
  assert {int(r["repetition"]) for r in records["test"]} == {11, 22, 33, 44, 55, 66}
  assert {int(r["session"]) for r in records["validation"]} == {2}
  assert builder.info.features["label"].names == list(epn.CLASSES)
  assert dict(builder.info.metadata) == {
      "sample_rate_hz": 200.0, "num_channels": 8, "window": 1000, "stride": 1000,
      "padded": 109, "truncated": 5, "skipped_too_short": 0}


def test_values_are_scaled_filtered_and_padded(built):
  _, records = built
  user = json.loads((ROOT / "trainingJSON" / "user10" / "user10.json").read_text())
  for key, length in (("idx_2", 60), ("idx_1", 1010)):
    raw = np.array([user["testingSamples"][key]["emg"][f"ch{c}"] for c in range(1, 9)]) / 128
    expected = np.zeros((8, 1000))
    expected[:, :min(length, 1000)] = testing.reference_filter(raw, 200, (20, 90), 50)[:, :1000]
    index = int(key.split("_")[1])
    (got,) = [r for r in records["validation"] if r["subject"] == 10 and r["repetition"] == index]
    np.testing.assert_allclose(got["emg"], expected, atol=1e-6)
    assert got["emg"].shape == (8, 1000) and got["emg"].dtype == np.float32


def test_by_user_is_subject_disjoint(tmp_path):
  _, records = testing.build_and_read("epn612", DUMMY_DIR, tmp_path, config="by_user")
  assert testing.assert_subject_disjoint(records) == {
      "train": {1}, "validation": {10}, "test": {307}}
  assert testing.split_sizes(records) == {"train": 24, "validation": 24, "test": 66}


@pytest.mark.parametrize("damage, problem", [
    ("gesture", "gestureName 'thumbsUp' is not one of"),
    ("channels", r"emg has channels \['ch1', .*'ch7'\], expected ch1..ch8"),
    ("truncate", "unreadable JSON"),
    ("no_label", "idx_3: no gestureName"),
    ("missing", "user10.json is missing"),
])
def test_bad_input_names_file_and_leaves_nothing(tmp_path, damage, problem):
  manual = tmp_path / "manual"
  shutil.copytree(DUMMY_DIR, manual, ignore=shutil.ignore_patterns("*.py"))
  path = manual / epn.ROOT_FOLDER / "trainingJSON" / "user10" / "user10.json"
  if damage == "truncate":
    path.write_bytes(path.read_bytes()[:5000])
  elif damage == "missing":
    path.unlink()
  else:
    user = json.loads(path.read_text())
    sample = user["trainingSamples"]["idx_3"]
    if damage == "gesture":
      sample["gestureName"] = "thumbsUp"
    elif damage == "channels":
      del sample["emg"]["ch8"]
    else:
      del sample["gestureName"]
    path.write_text(json.dumps(user))
  testing.assert_build_fails("epn612", manual, tmp_path / "tfds", problem, "user10")
