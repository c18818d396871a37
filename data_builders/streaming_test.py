"""Tests of the TF-free spilling of TFDS's shuffler: same records, no TensorFlow, bounded buffer."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from tensorflow_datasets.core import shuffle

from data_builders import build as build_lib
from data_builders import streaming, testing

EMG2POSE_DUMMY = Path(__file__).resolve().parent / "emg2pose" / "dummy_data"


def test_spilled_build_writes_the_in_memory_records(tmp_path, monkeypatch):
  in_memory = build_lib.build("emg2pose", manual_dir=EMG2POSE_DUMMY, data_dir=tmp_path / "mem",
                              buffer_bytes=1 << 30)
  spilled_adds = []
  original_add = streaming._bucket_add

  def counting_add(bucket, key, data):
    spilled_adds.append(key)
    original_add(bucket, key, data)

  monkeypatch.setattr(streaming, "_bucket_add", counting_add)
  spilled = build_lib.build("emg2pose", manual_dir=EMG2POSE_DUMMY, data_dir=tmp_path / "spill",
                            buffer_bytes=1)
  # The first record already exceeds the 1-byte buffer: every record goes through a bucket file.
  total = sum(s.num_examples for s in spilled.info.splits.values())
  assert total == 12 and len(spilled_adds) == total
  assert "tensorflow" not in sys.modules
  assert not list((tmp_path / "spill").rglob("bucket_*.tmp"))
  for split in testing.SPLITS:
    assert in_memory.info.splits[split].num_examples == spilled.info.splits[split].num_examples
  records = {d: testing.read_splits("emg2pose", tmp_path / d) for d in ("mem", "spill")}
  testing.assert_same_records(records["mem"], records["spill"])


def test_bucket_round_trip_and_truncation(tmp_path):
  payloads = {3: b"abc", 1 << 100: b"", 7: np.arange(50, dtype=np.float32).tobytes()}
  with streaming.streaming_writes():
    bucket = shuffle._Bucket(tmp_path / "sub" / "bucket.tmp")
    for key, data in payloads.items():
      bucket.add(key, data)
    assert dict(bucket.read_values()) == payloads
    assert len(bucket) == 3 and bucket.size == 3 + 200
    path = tmp_path / "sub" / "bucket.tmp"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(OSError, match=f"shuffle bucket {path} is truncated"):
      list(bucket.read_values())
    bucket.del_file()
    assert not path.exists()
    assert list(shuffle._Bucket(tmp_path / "never_written.tmp").read_values()) == []


def test_patch_is_undone_even_after_an_error():
  add, buffer = shuffle._Bucket.add, shuffle.MAX_MEM_BUFFER_SIZE
  with pytest.raises(RuntimeError, match="boom"):
    with streaming.streaming_writes(1234):
      assert shuffle.MAX_MEM_BUFFER_SIZE == 1234 and shuffle._Bucket.add is not add
      raise RuntimeError("boom")
  assert shuffle._Bucket.add is add and shuffle.MAX_MEM_BUFFER_SIZE == buffer


def test_buffer_must_be_positive():
  with pytest.raises(ValueError, match="buffer_bytes must be positive, got 0"):
    with streaming.streaming_writes(0):
      pass


def test_cli_rejects_a_non_positive_buffer(tmp_path, capsys):
  with pytest.raises(SystemExit) as info:
    build_lib.main(["emg2pose", f"--manual_dir={EMG2POSE_DUMMY}", f"--data_dir={tmp_path}",
                    "--buffer_mb=0"])
  assert info.value.code == 2
  assert "--buffer_mb must be a positive number of MB, got 0" in capsys.readouterr().err
