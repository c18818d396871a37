"""Task types: what a run trains and how it is tested, one module each.

`get(config.task)` returns the run's `Task`: a built-in type (`BUILTIN`) or
"package.module:NAME", a `Task` defined in any importable module (a new task type needs no edit
here). The training loop (`train.py`) and the fine-tuning driver (`finetune.py`) reach a task only
through this object; a new corpus of an existing type is a `configs/finetune.py` entry.
"""

from __future__ import annotations

import importlib

from tinymyo_jax.tasks.core import Task

# config.task -> (module of this package, its Task attribute)
BUILTIN = {"pretrain": ("pretrain", "TASK"), "classification": ("classification", "TASK"),
           "regression": ("regression", "TASK"), "speech_recognition": ("speech", "RECOGNITION"),
           "speech_synthesis": ("speech", "SYNTHESIS")}


def get(name: str) -> Task:
  """The `Task` of `name` (a `BUILTIN` key or "package.module:NAME"); ValueError if unknown."""
  if name in BUILTIN:
    module, attr = BUILTIN[name]
    return getattr(importlib.import_module(f"tinymyo_jax.tasks.{module}"), attr)
  module, colon, attr = str(name).partition(":")
  if not (colon and module and attr):
    raise ValueError(f"unknown task {name!r}; expected one of {sorted(BUILTIN)} or "
                     f"'package.module:NAME' naming a tinymyo_jax.tasks.Task")
  try:
    task = getattr(importlib.import_module(module), attr)
  except (ImportError, AttributeError) as e:
    raise ValueError(f"task {name!r} cannot be loaded: {e}") from None
  if not isinstance(task, Task):
    raise ValueError(f"task {name!r} is a {type(task).__name__}, not a tinymyo_jax.tasks.Task")
  return task


__all__ = ["BUILTIN", "Task", "get"]
