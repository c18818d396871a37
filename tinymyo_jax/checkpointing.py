"""Orbax checkpoints: train state + data-iterator state + model metadata, resume from latest.

Layout of a checkpoint directory (one orbax `CheckpointManager`):
  <dir>/<step>/params     model state (nested dict, `nnx.to_pure_dict` layout): the parameters
                          and, for the speech model, its BatchNorm running statistics
  <dir>/<step>/opt_state  optimizer state (training checkpoints only)
  <dir>/<step>/data       grain iterator state (training checkpoints only), one
                          `process_<i>-of-<N>.json` per process; the states are equal (a count
                          of global batches), so a run resumes under another process count
  <dir>/<step>/meta       JSON: {"model": ModelConfig (or tagged SpeechConfig) fields, "step", ...}
The model config, including `rope_mode`, travels with every checkpoint.
Orbax writes each step into a temporary folder and renames it when complete, so a killed save
never looks finished. A finished step that fails to restore is skipped with a warning in favour
of the previous one (and moved to `<dir>.unreadable/`); if none restores, `CheckpointError` is
raised (never a silent restart).
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import time
from typing import Any

import jax
import orbax.checkpoint as ocp

from tinymyo_jax.models import factory
from tinymyo_jax.models.speech import SpeechConfig
from tinymyo_jax.models.tinymyo import ModelConfig

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
  """A checkpoint directory exists but none of its steps can be restored."""


# TensorStore errors embed the whole store spec (kilobytes of JSON) in their message.
_TENSORSTORE_SPEC = re.compile(r"\s*\[tensorstore_spec='.*?'\]")
_MAX_REASON = 300


def unreadable_step(step: int, path: str, error: BaseException) -> str:
  """One line for a step that cannot be restored: step, path, exception type, first line."""
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  reason = _TENSORSTORE_SPEC.sub("", lines[0] if lines else "")
  if len(reason) > _MAX_REASON:
    reason = reason[:_MAX_REASON - 3] + "..."
  return f"step {step} at {path}: {type(error).__name__}: {reason}"


def _manager(directory: str, max_to_keep: int | None = None) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                         enable_async_checkpointing=False)
  return ocp.CheckpointManager(os.path.abspath(directory), options=options)


def model_config_to_json(config: ModelConfig | SpeechConfig) -> dict[str, Any]:
  return factory.config_to_json(config)


def model_config_from_json(data: dict[str, Any]) -> ModelConfig | SpeechConfig:
  """The ModelConfig (or, when tagged `model_type: speech`, SpeechConfig) of a checkpoint."""
  try:
    return factory.config_from_json(data)
  except ValueError as e:
    raise CheckpointError(f"checkpoint model config cannot be read: {e}") from e


class Checkpointer:
  """Saves and restores training checkpoints in one directory."""

  def __init__(self, directory: str, *, max_to_keep: int = 3):
    self.directory = os.path.abspath(directory)
    self.manager = _manager(self.directory, max_to_keep)

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, *, params, opt_state, data_iter, meta: dict[str, Any]) -> None:
    args = dict(params=ocp.args.StandardSave(params), opt_state=ocp.args.StandardSave(opt_state),
                meta=ocp.args.JsonSave({**meta, "step": int(step)}))
    if data_iter is not None:
      import grain  # local: grain is heavy and only needed with a data iterator
      args["data"] = grain.checkpoint.CheckpointSave(data_iter)
    self.manager.save(step, args=ocp.args.Composite(**args), force=True)
    self.manager.wait_until_finished()

  def restore_latest(self, abstract_params, abstract_opt_state, data_iter):
    """Restores the newest step that restores cleanly.

    Returns (step, params, opt_state, meta), or None when the directory holds no checkpoint.
    The data iterator is restored in place.
    """
    steps = sorted(self.manager.all_steps(), reverse=True)
    if not steps:
      return None
    errors = []
    for step in steps:
      other_layout = data_iter is not None and self._other_layout_state(step)
      try:
        args = dict(params=ocp.args.StandardRestore(abstract_params),
                    opt_state=ocp.args.StandardRestore(abstract_opt_state),
                    meta=ocp.args.JsonRestore())
        if data_iter is not None and not other_layout:
          import grain
          args["data"] = grain.checkpoint.CheckpointRestore(data_iter)
        out = self.manager.restore(step, args=ocp.args.Composite(**args))
        if other_layout:
          data_iter.set_state(other_layout[1])
          log.info("step %d: data-iterator state of a %s-process run restored into process %d "
                   "of %d", step, other_layout[0], jax.process_index(), jax.process_count())
        if errors:
          self._quarantine([s for s, _ in errors])
          log.warning("skipped unreadable checkpoints: %s", "; ".join(e for _, e in errors))
        return step, out["params"], out["opt_state"], out["meta"]
      except Exception as e:  # noqa: BLE001 - any failure means this step is unusable
        errors.append((step, unreadable_step(step, os.path.join(self.directory, str(step)), e)))
        log.warning("cannot restore checkpoint %s; trying an older one", errors[-1][1])
        log.debug("full error of checkpoint step %d", step, exc_info=True)
    raise CheckpointError(
        f"no checkpoint in {self.directory} can be restored; refusing to restart from step 0: "
        + "; ".join(e for _, e in errors))

  def _other_layout_state(self, step: int) -> tuple[int, Any] | None:
    """(process count, iterator state) of a step saved under another process count, or None when
    this process has its own state file (or there is none to read: then the step is unreadable).

    Every process saves the same state (`input_pipeline.GlobalBatchRows`: a count of global
    batches), so any process of any count can take it; states that differ are refused.
    """
    data_dir = os.path.join(self.directory, str(step), "data")
    own = f"process_{jax.process_index()}-of-{jax.process_count()}.json"
    files = sorted(glob.glob(os.path.join(data_dir, "process_*-of-*.json")))
    if not files or os.path.exists(os.path.join(data_dir, own)):
      return None
    states = {os.path.basename(f): json.loads(open(f).read()) for f in files}
    first = next(iter(states.values()))
    if any(state != first for state in states.values()):
      raise CheckpointError(
          f"step {step} in {self.directory} was saved by {len(files)} processes whose data-"
          f"iterator states differ ({', '.join(states)}), so it cannot resume as process "
          f"{jax.process_index()} of {jax.process_count()}: resume with the saved process count")
    return len(files), first

  def _quarantine(self, steps) -> None:
    """Moves unreadable steps to `<dir>.unreadable/` (kept for inspection, out of the way)."""
    target = self.directory + ".unreadable"
    os.makedirs(target, exist_ok=True)
    for step in steps:
      dest = os.path.join(target, f"{step}-{int(time.time())}")
      os.replace(os.path.join(self.directory, str(step)), dest)
      log.warning("moved unreadable checkpoint step %d to %s", step, dest)
    self.manager.reload()

  def close(self) -> None:
    self.manager.close()


def save_params(directory: str, params, model_config: ModelConfig | SpeechConfig, *,
                step: int = 0, extra_meta: dict[str, Any] | None = None,
                max_to_keep: int | None = None) -> str:
  """Writes a params-only checkpoint (e.g. an imported or exported model). Returns its path."""
  manager = _manager(directory, max_to_keep)
  meta = {**(extra_meta or {}), "model": model_config_to_json(model_config), "step": int(step)}
  manager.save(step, args=ocp.args.Composite(params=ocp.args.StandardSave(params),
                                             meta=ocp.args.JsonSave(meta)), force=True)
  manager.wait_until_finished()
  manager.close()
  return os.path.join(os.path.abspath(directory), str(step))


def local_target(step_dir: str):
  """Abstract params of a checkpoint step placed on this process's first device, whatever the
  devices and processes that wrote it (e.g. a 2-process run read by one process)."""
  from etils import epath
  meta = ocp.StandardCheckpointHandler().metadata(epath.Path(step_dir) / "params")
  tree = getattr(meta, "tree", meta)
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), tree)


def _restore(directory: str, step: int | None, *, params: bool) -> dict[str, Any]:
  """The meta (and with `params`, the params on this process's first device) of a directory's
  latest (or given) finished step."""
  if not os.path.isdir(directory):
    raise CheckpointError(f"checkpoint directory {directory!r} does not exist")
  manager = _manager(directory)
  try:
    step = manager.latest_step() if step is None else step
    if step is None:
      raise CheckpointError(f"checkpoint directory {directory!r} has no finished step")
    path = os.path.join(os.path.abspath(directory), str(step))
    try:
      items = {"meta": ocp.args.JsonRestore()}
      if params:
        items["params"] = ocp.args.StandardRestore(local_target(path))
      return manager.restore(step, args=ocp.args.Composite(**items))
    except Exception as e:  # noqa: BLE001
      raise CheckpointError(f"cannot read checkpoint {unreadable_step(step, path, e)}") from e
  finally:
    manager.close()


def load_params(directory: str, step: int | None = None):
  """Reads (params, ModelConfig, meta) from a checkpoint directory (latest finished step), on
  this process's first device.

  Raises CheckpointError when the directory has no finished step or it cannot be read.
  """
  out = _restore(directory, step, params=True)
  params = jax.tree.map(lambda x: x, out["params"])
  return params, model_config_from_json(out["meta"]["model"]), dict(out["meta"])


def load_meta(directory: str, step: int | None = None) -> dict[str, Any]:
  """Reads only the JSON meta of a checkpoint directory's latest (or given) finished step."""
  return dict(_restore(directory, step, params=False)["meta"])
