"""Run outputs: TensorBoard events, a metrics.jsonl log, summary.json, progress bar."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import time
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


class LoopClock:
  """Wall seconds of the training loop and of its named parts, for summary.json's `loop`.

  The loop dispatches steps asynchronously, so its host-side parts overlap the device's work:
  `data` (fetching a batch and placing it) is an upper bound on the time the device waited for
  input, `dispatch` the host time in step calls, `sync` the time it waited for the device (log
  intervals, before evaluations and checkpoints), `compile` the first step. `eval` and
  `checkpoint` are not training time.
  """

  def __init__(self):
    self.start = time.perf_counter()
    self.seconds: dict[str, float] = collections.defaultdict(float)

  @contextlib.contextmanager
  def part(self, name: str):
    t0 = time.perf_counter()
    try:
      yield
    finally:
      self.seconds[name] += time.perf_counter() - t0

  def report(self, steps: int, batch_size: int) -> dict[str, float]:
    """Seconds per part, the training time (loop minus eval and checkpoints), and examples/s
    over the whole loop and over its training time, for `steps` steps of `batch_size`."""
    total = time.perf_counter() - self.start
    train = total - self.seconds["eval"] - self.seconds["checkpoint"]
    out = {"seconds": total, "train_seconds": train, "examples": steps * batch_size,
           **{f"{name}_seconds": v for name, v in sorted(self.seconds.items())}}
    if steps and total > 0:
      out["examples_per_sec_overall"] = steps * batch_size / total
      out["examples_per_sec_training"] = steps * batch_size / train
      out["data_fraction"] = self.seconds["data"] / train
    return out


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
