"""Run outputs: TensorBoard events, a metrics.jsonl log, summary.json, progress bar."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from tinymyo_jax import atomic_io


class MetricWriter:
  """Writes scalars to TensorBoard event files and appends them to `metrics.jsonl`."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    if not enabled:
      return
    from tensorboardX import SummaryWriter  # TF-free TensorBoard writer
    os.makedirs(workdir, exist_ok=True)
    self.tb = SummaryWriter(logdir=workdir)
    self.jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a", encoding="utf-8")

  def write(self, step: int, scalars: dict[str, Any], prefix: str = "") -> None:
    if not self.enabled:
      return
    scalars = {prefix + k: float(np.asarray(v)) for k, v in scalars.items()}
    for k, v in scalars.items():
      self.tb.add_scalar(k, v, step)
    self.jsonl.write(json.dumps({"step": int(step), **scalars}) + "\n")
    self.jsonl.flush()

  def close(self) -> None:
    if self.enabled:
      self.tb.close()
      self.jsonl.close()


def write_json_atomic(path: str, data: dict[str, Any]) -> None:
  """Writes a run output (summary.json, ...) atomically: sorted keys, numpy values as lists."""
  atomic_io.write_json(path, data, sort_keys=True, default=_jsonable)


def _jsonable(x):
  if isinstance(x, (np.generic, np.ndarray)):
    return x.tolist()
  return str(x)


def read_metrics(workdir: str) -> list[dict[str, float]]:
  """Rows of `metrics.jsonl` (every logged step, in write order)."""
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]
