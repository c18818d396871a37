"""Test evaluation under several JAX processes: every process scores the whole test split."""

from __future__ import annotations

import jax
import pytest

from tests.checkpoint_compat_test import FIXTURES, classifier_config
from tinymyo_jax import checkpointing, evaluate


def test_every_process_scores_the_whole_test_split_and_only_process_0_writes(tmp_path,
                                                                            monkeypatch):
  best = str(FIXTURES / "classifier_best")
  config = classifier_config()
  alone = evaluate.evaluate_checkpoint(config, best, str(tmp_path / "alone"))
  # Process 1 of 2: the test batches must not be its rows of each global batch. (The checkpoint
  # is read before: orbax would synchronise with a process 0 that does not exist.)
  loaded = checkpointing.load_params(best)
  monkeypatch.setattr(checkpointing, "load_params", lambda _: loaded)
  monkeypatch.setattr(jax, "process_index", lambda: 1)
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  second = evaluate.evaluate_checkpoint(config, best, str(tmp_path / "second"))
  assert second["num_examples"] == alone["num_examples"] > 0
  assert second["scalars"]["accuracy"] == pytest.approx(alone["scalars"]["accuracy"])
  assert (tmp_path / "alone" / "confusion.png").exists()
  assert not (tmp_path / "second").exists()
