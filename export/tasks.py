"""The task names export and GAP9 codegen accept: `configs/finetune.py`'s tasks, plus outputs.

A fine-tuning task name is anything `configs.finetune.get_config` takes (`uci`, `db5`,
`uci_200hz,fold0`, ...); it fixes the head, its channels and its outputs. The output names
below pick a head kind (or the encoder's latent tokens) without naming a task.
"""

from __future__ import annotations

import dataclasses

from configs import finetune as finetune_configs

# Output name -> head the checkpoint must have (None: any head, the encoder's latent tokens).
OUTPUTS = {"pretrain": "reconstruction", "pretraining": "reconstruction",
           "reconstruction": "reconstruction", "classification": "classification",
           "regression": "regression", "encoder": None}
HEADS = ("classification", "regression")  # task types with a TinyMyo head of that name


class TaskError(ValueError):
  """An unknown task name, or a task that does not fit the checkpoint or the tool."""


@dataclasses.dataclass(frozen=True)
class Task:
  """What a task name fixes: the head, and for a fine-tuning task its data and shape."""

  name: str
  head: str | None  # None: the encoder output, or a task without a TinyMyo head (speech)
  task_type: str | None = None  # configs' `task` field; None for an output name
  num_channels: int | None = None
  num_outputs: int | None = None
  dataset: str | None = None

  @property
  def finetuning(self) -> bool:
    return self.task_type is not None


def known() -> str:
  """The accepted names, for error messages."""
  return (f"fine-tuning tasks {sorted(finetune_configs.TASKS)} (with the ',<modifier>' suffixes "
          f"configs/finetune.py takes, e.g. a UCI split of {sorted(finetune_configs.UCI_SPLITS)}), "
          f"outputs {sorted(OUTPUTS)}")


def lookup(name: str) -> Task:
  """The Task of `name`; TaskError naming the accepted names when it is unknown."""
  if name in OUTPUTS:
    return Task(name, OUTPUTS[name])
  if name.partition(",")[0] not in finetune_configs.TASKS:
    raise TaskError(f"unknown task {name!r}; known: {known()}")
  try:
    c = finetune_configs.get_config(name)
  except ValueError as e:
    raise TaskError(f"task {name!r}: {e}") from e
  head = c.model.head if c.task in HEADS else None
  return Task(name, head, c.task, int(c.model.num_channels), int(c.model.num_outputs),
              c.data.sources[0][0])


def check_checkpoint(task: Task, config, tool: str) -> None:
  """Raises TaskError when a fine-tuning task's head shape differs from the checkpoint's."""
  if not task.finetuning:
    return
  if task.head is None:
    raise TaskError(f"task {task.name!r} trains a {task.task_type} model; {tool} handles TinyMyo "
                    f"checkpoints with a {' or '.join(HEADS)} head")
  got = (config.head, config.num_channels, config.num_outputs)
  want = (task.head, task.num_channels, task.num_outputs)
  if got != want:
    raise TaskError(f"task {task.name!r} needs a {want[0]} head on {want[1]} channels with "
                    f"{want[2]} outputs; the checkpoint has a {got[0]} head on {got[1]} "
                    f"channels with {got[2]} outputs")
