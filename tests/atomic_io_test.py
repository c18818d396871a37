"""Atomic writes: the target is complete or untouched, and no temporary file is left behind."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tinymyo_jax import atomic_io


def test_write_json_and_text(tmp_path):
  path = tmp_path / "sub" / "out.json"
  atomic_io.write_json(path, {"b": 1, "a": [1, 2]}, sort_keys=True)
  assert path.read_text() == json.dumps({"a": [1, 2], "b": 1}, indent=2) + "\n"
  assert os.stat(path).st_mode & 0o777 == 0o644
  atomic_io.write_text(path, "new")
  assert path.read_text() == "new"
  assert sorted(os.listdir(path.parent)) == ["out.json"]


def test_failed_write_leaves_the_old_file(tmp_path):
  path = tmp_path / "x.npz"
  np.savez(path, a=np.zeros(2))
  with pytest.raises(RuntimeError), atomic_io.atomic_path(path, suffix=".npz") as tmp:
    np.savez(tmp, a=np.ones(3))  # a writer that insists on its suffix keeps `tmp` as given
    assert os.path.exists(tmp)
    raise RuntimeError
  with np.load(path) as z:
    assert z["a"].shape == (2,)
  assert os.listdir(tmp_path) == ["x.npz"]


def test_atomic_dir_replaces_only_on_success(tmp_path):
  out = tmp_path / "project"
  with atomic_io.atomic_dir(out) as tmp:
    (open(os.path.join(tmp, "a.txt"), "w")).close()
  assert os.listdir(out) == ["a.txt"] and os.stat(out).st_mode & 0o777 == 0o755
  with pytest.raises(ValueError), atomic_io.atomic_dir(out) as tmp:
    (open(os.path.join(tmp, "b.txt"), "w")).close()
    raise ValueError
  assert os.listdir(out) == ["a.txt"]
  with atomic_io.atomic_dir(out) as tmp:
    (open(os.path.join(tmp, "c.txt"), "w")).close()
  assert os.listdir(out) == ["c.txt"]
  assert os.listdir(tmp_path) == ["project"]
