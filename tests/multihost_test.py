"""Gathering variable-length results across processes (`multihost.gather_*`), with two
processes simulated one after the other."""

from __future__ import annotations

import jax
import numpy as np

from tinymyo_jax import multihost


class TwoProcesses:
  """Stands in for `multihost.gather_rows` across two processes simulated one after the other:
  `record(i)` keeps process i's arguments of each call (and returns them), `replay()` returns
  what the real gather would: process 0's rows, then process 1's, call by call."""

  def __init__(self):
    self.calls = {0: [], 1: []}

  def record(self, index):
    def gather(*arrays):
      self.calls[index].append(arrays)
      return arrays
    return gather

  def replay(self):
    pending = iter(zip(self.calls[0], self.calls[1]))

    def gather(*arrays):
      first, second = next(pending)
      assert [a.shape[1:] for a in first] == [a.shape[1:] for a in arrays]
      return tuple(np.concatenate(parts) for parts in zip(first, second))
    return gather


def both_processes(monkeypatch, fn, first, second):
  """`fn(first)` as process 0, `fn(second)` as process 1, then process 1's result once it has
  process 0's rows too."""
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  gathers = TwoProcesses()
  for index, arg in enumerate((first, second)):
    monkeypatch.setattr(multihost, "gather_rows", gathers.record(index))
    fn(arg)
  monkeypatch.setattr(multihost, "gather_rows", gathers.replay())
  return fn(second)


def test_texts_arrive_in_process_order_even_from_a_process_with_none(monkeypatch):
  assert multihost.gather_texts(["a", ""]) == ["a", ""]  # one process: as given
  got = both_processes(monkeypatch, multihost.gather_texts, ["näive", "", "bc"], [])
  assert got == ["näive", "", "bc"]
  got = both_processes(monkeypatch, multihost.gather_texts, ["x"], ["yz", "w"])
  assert got == ["x", "yz", "w"]


def test_ragged_arrays_keep_their_lengths_shape_and_dtype(monkeypatch):
  first = [np.arange(6, dtype=np.float32).reshape(3, 2), np.zeros((0, 2), np.float32)]
  second = [np.ones((1, 2), np.float32)]

  def gather(items):
    return multihost.gather_ragged(items, (2,))

  got = both_processes(monkeypatch, gather, first, second)
  assert [g.shape for g in got] == [(3, 2), (0, 2), (1, 2)]
  assert all(g.dtype == np.float32 for g in got)
  np.testing.assert_array_equal(np.concatenate(got), np.concatenate(first + second))
  assert both_processes(monkeypatch, gather, [], []) == []
