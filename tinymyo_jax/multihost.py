"""Multi-process runs: `jax.distributed` start-up, one config on every process, and errors that
name the process that raised them.

A run of N processes (one per host, or several on one machine with CPU devices and gloo
collectives) starts every process with the same --config flags and its own --process_id; see
README "Multi-process".
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np


class ConfigMismatchError(ValueError):
  """A process was started with a different run config than process 0."""


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, heartbeat_timeout_s: int = 100,
               initialization_timeout_s: int = 300) -> None:
  """Starts `jax.distributed` (unset arguments come from the environment, e.g. SLURM).

  A process that stops sending heartbeats (killed, hung) for `heartbeat_timeout_s` is declared
  dead by the coordinator, and every other process is then terminated with an error.
  """
  jax.distributed.initialize(coordinator_address, num_processes, process_id,
                             initialization_timeout=initialization_timeout_s,
                             heartbeat_timeout_seconds=heartbeat_timeout_s)


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  if isinstance(tree, dict):
    out = {}
    for k, v in tree.items():
      out.update(_flatten(v, f"{prefix}{k}."))
    return out
  return {prefix[:-1]: tree}


def check_same_config(config) -> None:
  """Raises `ConfigMismatchError` on every process when any process's config differs from
  process 0's, naming the process and the first differing fields. No-op with one process."""
  if jax.process_count() == 1:
    return
  from jax.experimental import multihost_utils
  text = np.frombuffer(config.to_json(sort_keys=True).encode(), np.uint8)
  lengths = np.asarray(multihost_utils.process_allgather(np.int32(text.size))).reshape(-1)
  padded = np.zeros(int(lengths.max()), np.uint8)
  padded[:text.size] = text
  texts = np.asarray(multihost_utils.process_allgather(padded))
  configs = [_flatten(json.loads(bytes(t[:n]).decode())) for t, n in zip(texts, lengths)]
  for index, other in enumerate(configs[1:], start=1):
    diff = [k for k in sorted(set(configs[0]) | set(other)) if configs[0].get(k) != other.get(k)]
    if diff:
      listed = "; ".join(f"{k}: process 0 {configs[0].get(k)!r}, process {index} "
                         f"{other.get(k)!r}" for k in diff[:5])
      raise ConfigMismatchError(
          f"process {index} of {len(configs)} was started with a different config than process "
          f"0 ({listed}); start every process with the same --config flags")


def gather_rows(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
  """Every process's rows of each array, process 0's first, on every process; the arrays
  themselves with one process. Processes may hold different numbers of rows, zero included."""
  if jax.process_count() == 1:
    return arrays
  from jax.experimental import multihost_utils
  counts = np.asarray(multihost_utils.process_allgather(np.int32(len(arrays[0])))).reshape(-1)
  most = max(int(counts.max()), 1)
  out = []
  for a in arrays:
    padded = np.zeros((most, *a.shape[1:]), a.dtype)
    padded[:len(a)] = a
    every = np.asarray(multihost_utils.process_allgather(padded))  # [processes, most, ...]
    out.append(np.concatenate([every[p, :n] for p, n in enumerate(counts)]))
  return tuple(out)


def gather_ragged(items: Sequence[np.ndarray], row_shape: tuple[int, ...] = (),
                  dtype=np.float32) -> list[np.ndarray]:
  """Every process's arrays, process 0's first, on every process. Each array is [n_i,
  *row_shape] of `dtype` (the same on every process, so that a process with none still sends
  the right shape); with `gather_rows` under the hood."""
  lengths = np.array([len(a) for a in items], np.int64)
  rows = np.concatenate([np.asarray(a, dtype).reshape(-1, *row_shape) for a in items]
                        or [np.zeros((0, *row_shape), dtype)])
  lengths, = gather_rows(lengths)
  rows, = gather_rows(rows)
  return np.split(rows, np.cumsum(lengths)[:-1]) if len(lengths) else []


def gather_texts(texts: Sequence[str]) -> list[str]:
  """Every process's strings, process 0's first, on every process (sent as UTF-8 bytes)."""
  encoded = [np.frombuffer(t.encode(), np.uint8) for t in texts]
  return [bytes(b).decode() for b in gather_ragged(encoded, dtype=np.uint8)]


COMPILE_BARRIER_TIMEOUT_S = 900
_barrier_ids = itertools.count()  # barrier names must be unique; every process counts alike


def sync_after_compile(fn, name: str):
  """`fn` (a jitted function) compiled ahead of its first call, then a barrier of all processes.

  CPU (gloo) collectives give up after 30 s when a peer has not reached them yet, which a slow
  compile on a busy host exceeds; the barrier (a coordination-service wait of up to
  `COMPILE_BARRIER_TIMEOUT_S`) starts every process's first run together. One process: `fn`.
  """
  if jax.process_count() == 1:
    return fn
  compiled = None

  def call(*args):
    nonlocal compiled
    if compiled is None:
      import orbax.checkpoint as ocp
      compiled = fn.lower(*args).compile()
      ocp.multihost.sync_global_processes(f"tinymyo_compiled_{name}_{next(_barrier_ids)}",
                                          timeout=COMPILE_BARRIER_TIMEOUT_S)
    return compiled(*args)

  return call
