"""Unreadable checkpoint steps are reported in one line, without the TensorStore spec."""

from __future__ import annotations

import logging

import jax
import numpy as np
import pytest
from flax import nnx

from tinymyo_jax import checkpointing
from tinymyo_jax.models.tinymyo import create_model, decode_variant

PARAMS = {"w": np.ones((16, 16), np.float32), "b": np.zeros(16, np.float32)}
OPT = {"m": np.ones(16, np.float32)}


def _abstract(tree):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)


def _corrupt(step_dir):
  for f in (step_dir / "params").rglob("*"):
    if f.is_file() and f.name not in ("_METADATA", "_CHECKPOINT_METADATA", "_sharding"):
      f.write_bytes(b"garbage" * 8)


def _assert_one_line(text, step, path):
  assert "\n" not in text and "tensorstore_spec" not in text
  assert f"step {step} at {path}: " in text
  reason = text.split(f"step {step} at {path}: ", 1)[1].split("; step ")[0]
  assert reason.split(":")[0].isidentifier()  # the exception type comes first
  assert len(reason) <= 400


def test_unreadable_step_is_one_line_and_the_previous_one_is_used(tmp_path, caplog):
  ckpt = checkpointing.Checkpointer(str(tmp_path / "ck"))
  for step in (1, 2):
    ckpt.save(step, params=PARAMS, opt_state=OPT, data_iter=None, meta={})
  _corrupt(tmp_path / "ck" / "2")
  with caplog.at_level(logging.WARNING, logger="tinymyo_jax.checkpointing"):
    step, _, _, _ = ckpt.restore_latest(_abstract(PARAMS), _abstract(OPT), None)
  assert step == 1
  warnings = [r.getMessage() for r in caplog.records if "cannot restore" in r.getMessage()]
  assert len(warnings) == 1
  _assert_one_line(warnings[0], 2, tmp_path / "ck" / "2")
  assert all("tensorstore_spec" not in r.getMessage() for r in caplog.records)
  ckpt.close()


def test_no_readable_step_names_each_in_one_line(tmp_path):
  ckpt = checkpointing.Checkpointer(str(tmp_path / "ck"))
  for step in (1, 2):
    ckpt.save(step, params=PARAMS, opt_state=OPT, data_iter=None, meta={})
    _corrupt(tmp_path / "ck" / str(step))
  with pytest.raises(checkpointing.CheckpointError, match="refusing to restart") as info:
    ckpt.restore_latest(_abstract(PARAMS), _abstract(OPT), None)
  ckpt.close()
  for step in (2, 1):
    _assert_one_line(str(info.value), step, tmp_path / "ck" / str(step))


def test_load_params_of_an_unreadable_step_is_one_line(tmp_path):
  config = decode_variant("test")
  params = nnx.to_pure_dict(nnx.state(create_model(config, seed=0), nnx.Param))
  checkpointing.save_params(str(tmp_path / "ck"), params, config, step=5)
  _corrupt(tmp_path / "ck" / "5")
  with pytest.raises(checkpointing.CheckpointError, match="cannot read checkpoint step 5") as info:
    checkpointing.load_params(str(tmp_path / "ck"))
  _assert_one_line(str(info.value), 5, tmp_path / "ck" / "5")
