"""Task types: built-in names resolve, bad names fail clearly, and a task type defined only in
this file (`OFFSETS`) trains, early-stops and tests through the unchanged loop and driver."""

from __future__ import annotations

import re

import jax.numpy as jnp
import numpy as np
import pytest

from configs import common
from configs import finetune as finetune_configs
from tinymyo_jax import evaluate, finetune, input_pipeline, tasks, train
from tinymyo_jax.models.tinymyo import create_model
from tinymyo_jax.tasks import core


# ----------------------------------------------------------------------------- a toy task type:
# every window gets a per-channel offset in [-2, 2]; the model regresses the 8 offsets.


def add_offsets(batch):
  """Adds to each window a per-channel offset drawn from a seed of the window's own values."""
  emg = np.asarray(batch["emg"], np.float32)
  seeds = (np.abs(emg[:, :, :4]).sum(axis=(1, 2)) * 1e4).astype(np.int64)
  offsets = np.stack([np.random.default_rng(int(s)).uniform(-2, 2, emg.shape[1])
                      for s in seeds]).astype(np.float32)
  return dict(batch, emg=emg + offsets[:, :, None], offset=offsets)


def offset_dataset_fn(config, sources, batch_size, stats):
  make = core.window_dataset_fn(config, sources, batch_size, stats)
  return lambda split, *, seed, train: make(split, seed=seed, train=train).map(add_offsets)


def offset_loss(model, batch, key, train):
  pred = core.forward(model, batch["emg"], key, train)[:, 0, :]  # [B, 1, C] -> [B, C]
  loss = jnp.abs(pred - batch["offset"]).mean()
  return loss, {"loss": loss}


def evaluate_offsets(config, params, model_cfg, meta, out_dir):
  del out_dir
  model = create_model(model_cfg, params=params)
  batches = offset_dataset_fn(config, input_pipeline.config_sources(config), config.batch_size,
                              meta.get("input_stats"))(config.data.test_split, seed=0,
                                                       train=False)
  pred, target, _ = evaluate.predict(model, batches, config.batch_size, "offset")
  mae = float(np.abs(pred[:, 0] - target).mean())
  return {"scalars": {"mae": mae}, "details": {"mae": mae}, "num_examples": int(len(target))}


OFFSETS = tasks.Task(name="channel_offsets", model_config=core.window_model_config,
                     loss_fn=lambda config: offset_loss, dataset_fn=offset_dataset_fn,
                     evaluate=evaluate_offsets)


def offsets_config():
  c = finetune_configs.get_config("uci").unlock()
  c.task = f"{__name__}:OFFSETS"
  c.data.sources = (("synthetic", "8x200:256", 1.0),)
  c.data.keep = ()
  c.model.update(variant="test", head="regression", num_channels=8, num_outputs=8,
                 target_len=1, dropout=0.0, drop_path=0.0)
  c.batch_size = 32
  c.finetune.update(num_epochs=6, warmup_epochs=1, layer_decay=1.0)
  c.optimizer.peak_lr = 2e-3
  c.init_from = ""
  c.progress_bar = False
  return c


def test_a_task_type_defined_in_a_test_trains_through_the_loop(tmp_path):
  config = offsets_config()
  common.validate(config)
  assert tasks.get(config.task) is OFFSETS
  summary = finetune.run(config, str(tmp_path))
  run = summary["runs"][0]
  assert summary["task_type"] == config.task and run["steps"] == 6 * 8
  # Predicting 0 scores E|U(-2, 2)| = 1; the trained head gets well below it on the test split.
  assert summary["test"]["mae"]["mean"] < 0.6, summary["test"]
  assert (tmp_path / "report.md").exists()


@pytest.mark.parametrize("name,module", [("pretrain", "pretrain"),
                                         ("classification", "classification"),
                                         ("regression", "regression"),
                                         ("speech_recognition", "speech"),
                                         ("speech_synthesis", "speech")])
def test_builtin_task_types_resolve_to_their_modules(name, module):
  task = tasks.get(name)
  assert task.name == name and isinstance(task, tasks.Task)
  assert f"tinymyo_jax.tasks.{module}" in task.loss_fn.__module__ or module == "speech"
  assert (task.evaluate is None) == (name == "pretrain")
  assert (task.qat_loss_fn is not None) == (name == "classification")
  assert task.augmentable == (not name.startswith("speech"))


@pytest.mark.parametrize("name,problem", [
    ("clasification", r"unknown task 'clasification'; expected one of \['classification'"),
    ("tests.no_such_module:TASK", r"cannot be loaded: No module named 'tests.no_such_module'"),
    (f"{__name__}:NOT_THERE", "cannot be loaded: module .* has no attribute 'NOT_THERE'"),
    (f"{__name__}:offsets_config", "is a function, not a tinymyo_jax.tasks.Task"),
])
def test_bad_task_names_are_refused_by_validate(name, problem):
  config = offsets_config()
  config.task = name
  with pytest.raises(ValueError, match=problem):
    common.validate(config)


def test_the_loop_and_driver_branch_on_no_task_type():
  from tests.conftest import REPO
  for module in ("train.py", "finetune.py", "evaluate.py", "main.py"):
    source = (REPO / "tinymyo_jax" / module).read_text()
    assert not re.search(r"\.task\s*(==|!=|in\b|not in\b)", source), module
    named = [t for t in tasks.BUILTIN if t != "pretrain" and (f'"{t}"' in source
                                                             or f"'{t}'" in source)]
    assert not named, f"{module} names task types {named}"
  assert train.model_config_from(offsets_config()).head == "regression"
