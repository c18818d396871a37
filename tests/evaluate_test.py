"""Test evaluation under several JAX processes: each predicts its share of the test split, and
all score the whole of it."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from tests.checkpoint_compat_test import FIXTURES, classifier_config
from tinymyo_jax import checkpointing, evaluate, multihost


def test_processes_share_the_test_split_and_only_process_0_writes(tmp_path, monkeypatch):
  best = str(FIXTURES / "classifier_best")
  config = classifier_config()
  alone = evaluate.evaluate_checkpoint(config, best, str(tmp_path / "alone"))
  # Two processes, simulated one after the other. (The checkpoint is read before: orbax would
  # synchronise with a process that does not exist.)
  loaded = checkpointing.load_params(best)
  monkeypatch.setattr(checkpointing, "load_params", lambda _: loaded)
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  shares = {}

  def keep_share(index):
    def gather(*arrays):
      shares[index] = arrays
      return arrays
    return gather

  for index in (0, 1):
    monkeypatch.setattr(jax, "process_index", lambda index=index: index)
    monkeypatch.setattr(multihost, "gather_rows", keep_share(index))
    evaluate.evaluate_checkpoint(config, best, str(tmp_path / f"share{index}"))
  sizes = [len(shares[i][1]) for i in (0, 1)]
  assert sum(sizes) == alone["num_examples"] > 0 and abs(sizes[0] - sizes[1]) <= 1
  # Process 1 once it has every process's predictions: the whole split's scores, no files.
  monkeypatch.setattr(multihost, "gather_rows", lambda *arrays: tuple(
      np.concatenate(parts) for parts in zip(shares[0], shares[1])))
  second = evaluate.evaluate_checkpoint(config, best, str(tmp_path / "second"))
  assert second["num_examples"] == alone["num_examples"]
  for key in ("accuracy", "macro_f1"):
    assert second["scalars"][key] == pytest.approx(alone["scalars"][key])
  assert second["scalars"]["accuracy_by_subject"] == pytest.approx(
      alone["scalars"]["accuracy_by_subject"])
  assert (tmp_path / "alone" / "confusion.png").exists()
  assert not (tmp_path / "second").exists() and not (tmp_path / "share1").exists()
