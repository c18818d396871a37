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


def _iterator():
  from tinymyo_jax import input_pipeline
  source = input_pipeline.Source("synthetic", "8x40:37:1000", 1.0)
  return iter(input_pipeline.make_dataset([source], "train", data_dir="", batch_size=4, seed=3,
                                          train=True, process=(0, 1)))


def _as_saved_by(step_dir, count: int, states=None):
  """Rewrites a 1-process step's iterator file as `count` processes would have written it."""
  data = step_dir / "data"
  (own,) = data.glob("process_*-of-*.json")
  text = own.read_text()
  own.unlink()
  for i in range(count):
    (data / f"process_{i}-of-{count}.json").write_text(states[i] if states else text)


def test_iterator_state_of_another_process_count_resumes_at_the_same_batch(tmp_path):
  ck = checkpointing.Checkpointer(str(tmp_path))
  it = _iterator()
  for _ in range(5):
    next(it)
  ck.save(5, params=PARAMS, opt_state=OPT, data_iter=it, meta={})
  want = next(it)["emg"]
  _as_saved_by(tmp_path / "5", 2)  # as a 2-process run saves it; this process is 0 of 1
  fresh = _iterator()
  step, *_ = checkpointing.Checkpointer(str(tmp_path)).restore_latest(
      _abstract(PARAMS), _abstract(OPT), fresh)
  assert step == 5
  np.testing.assert_array_equal(next(fresh)["emg"], want)


def test_iterator_states_that_differ_between_processes_are_refused(tmp_path):
  ck = checkpointing.Checkpointer(str(tmp_path))
  it = _iterator()
  next(it)
  ck.save(1, params=PARAMS, opt_state=OPT, data_iter=it, meta={})
  state = (tmp_path / "1" / "data" / "process_0-of-1.json").read_text()
  _as_saved_by(tmp_path / "1", 2, states=[state, state.replace("1", "2")])
  with pytest.raises(checkpointing.CheckpointError,
                     match=r"step 1 .* saved by 2 processes whose data-iterator states differ "
                           r"\(process_0-of-2.json, process_1-of-2.json\), so it cannot resume "
                           r"as process 0 of 1: resume with the saved process count"):
    checkpointing.Checkpointer(str(tmp_path)).restore_latest(_abstract(PARAMS), _abstract(OPT),
                                                             _iterator())
  assert (tmp_path / "1").is_dir()  # nothing was moved away as unreadable
