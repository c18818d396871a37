"""Per-process input pipelines: N processes' local batches form exactly one process's batches."""

from __future__ import annotations

import numpy as np
import pytest

from tinymyo_jax import input_pipeline

# Uneven corpora (37 and 23 records) mixed 2:1, so no count divides evenly.
SOURCES = [input_pipeline.Source("synthetic", "8x40:37:1000", 2.0),
           input_pipeline.Source("synthetic", "8x40:23:1000", 1.0)]


def pipeline(process, batch_size, train=True, sources=SOURCES):
  return input_pipeline.make_dataset(sources, "train", data_dir="", batch_size=batch_size,
                                     seed=3, train=train, process=process,
                                     augmentation=input_pipeline.Augmentation(scale=0.3))


@pytest.mark.parametrize("count", [2, 4])
def test_process_batches_concatenate_to_the_single_process_batch(count):
  local = 2
  single = iter(pipeline((0, 1), local * count))
  procs = [iter(pipeline((i, count), local)) for i in range(count)]
  seen = []
  for _ in range(12):  # past one epoch of the mixture (60 records / 8)
    want = next(single)["emg"]
    parts = [next(p)["emg"] for p in procs]
    np.testing.assert_array_equal(np.concatenate(parts), want)
    seen.append([{r.tobytes() for r in part} for part in parts])
  # Within every global batch the processes read disjoint records.
  for batch in seen:
    assert sum(len(s) for s in batch) == len(set().union(*batch)) == local * count
  # Iterator states agree (a batch count), so every process resumes at the same global batch.
  states = [p.get_state() for p in procs]
  assert all(s == states[0] for s in states) and states[0] == single.get_state()


def test_eval_pass_drops_the_partial_global_batch_on_every_process():
  count, local = 2, 4  # 37 records: 4 full global batches of 8, 5 records left over
  single = [b["emg"] for b in pipeline((0, 1), local * count, False, SOURCES[:1])]
  assert [len(b) for b in single] == [8, 8, 8, 8, 5]
  procs = [[b["emg"] for b in pipeline((i, count), local, False, SOURCES[:1])]
           for i in range(count)]
  assert [len(p) for p in procs] == [4, 4]
  for g in range(4):
    np.testing.assert_array_equal(np.concatenate([p[g] for p in procs]), single[g])
