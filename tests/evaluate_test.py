"""Test evaluation under several JAX processes: each predicts its share of the test split, and
all score the whole of it."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds
from flax import nnx

from data_builders import registry
from tests.checkpoint_compat_test import FIXTURES, classifier_config
from tests.conftest import REPO
from tests.multihost_test import TwoProcesses
from tests.speech_finetune_test import GADDY, speech_task
from tinymyo_jax import checkpointing, evaluate, multihost, tasks
from tinymyo_jax.models import factory


def test_processes_share_the_test_split_and_only_process_0_writes(tmp_path, monkeypatch):
  best = str(FIXTURES / "classifier_best")
  config = classifier_config()
  alone = evaluate.evaluate_checkpoint(config, best, str(tmp_path / "alone"))
  # Two processes, simulated one after the other. (The checkpoint is read before: orbax would
  # synchronise with a process that does not exist.)
  loaded = checkpointing.load_params(best)
  monkeypatch.setattr(checkpointing, "load_params", lambda _: loaded)
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  shares = {}

  def keep_share(index):
    def gather(*arrays):
      shares[index] = arrays
      return arrays
    return gather

  for index in (0, 1):
    monkeypatch.setattr(jax, "process_index", lambda index=index: index)
    monkeypatch.setattr(multihost, "gather_rows", keep_share(index))
    evaluate.evaluate_checkpoint(config, best, str(tmp_path / f"share{index}"))
  sizes = [len(shares[i][1]) for i in (0, 1)]
  assert sum(sizes) == alone["num_examples"] > 0 and abs(sizes[0] - sizes[1]) <= 1
  # Process 1 once it has every process's predictions: the whole split's scores, no files.
  monkeypatch.setattr(multihost, "gather_rows", lambda *arrays: tuple(
      np.concatenate(parts) for parts in zip(shares[0], shares[1])))
  second = evaluate.evaluate_checkpoint(config, best, str(tmp_path / "second"))
  assert second["num_examples"] == alone["num_examples"]
  for key in ("accuracy", "macro_f1"):
    assert second["scalars"][key] == pytest.approx(alone["scalars"][key])
  assert second["scalars"]["accuracy_by_subject"] == pytest.approx(
      alone["scalars"]["accuracy_by_subject"])
  assert (tmp_path / "alone" / "confusion.png").exists()
  assert not (tmp_path / "second").exists() and not (tmp_path / "share1").exists()


@pytest.fixture(scope="module")
def gaddy_dir(tmp_path_factory):
  path = tmp_path_factory.mktemp("gaddy_tfds")
  registry.builder_class(GADDY)(data_dir=str(path), config="origdev", file_format="array_record"
                                ).download_and_prepare(download_config=tfds.download.DownloadConfig(
                                    manual_dir=str(REPO / "data_builders" / GADDY / "dummy_data")))
  return str(path)


@pytest.mark.parametrize("name", ["gaddy_recognition", "gaddy_synthesis"])
def test_speech_processes_decode_their_rows_and_agree_with_one(tmp_path, monkeypatch, gaddy_dir,
                                                               name):
  # The dummy corpus's 4 training utterances as the test split, one per process and global
  # batch of 2: process 0 holds utterances 0 and 2, process 1 holds 1 and 3.
  config = speech_task(name, gaddy_dir, **{"data.test_split": "train", "batch_size": 1,
                                               "data.normalization": "none"})
  task = tasks.get(config.task)
  model_cfg = task.model_config(config)
  state = nnx.to_pure_dict(nnx.state(factory.create(model_cfg, seed=3)))

  def evaluate_as(out):
    return task.evaluate(config, state, model_cfg, {"input_stats": None}, str(tmp_path / out))

  alone = evaluate_as("alone")
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  gathers = TwoProcesses()
  for index in (0, 1):
    monkeypatch.setattr(jax, "process_index", lambda index=index: index)
    monkeypatch.setattr(multihost, "gather_rows", gathers.record(index))
    evaluate_as(f"share{index}")
  positions = [gathers.calls[i][0][0].tolist() for i in (0, 1)]  # the first gather
  assert positions == [[0, 2], [1, 3]]
  monkeypatch.setattr(multihost, "gather_rows", gathers.replay())
  both = evaluate_as("both")  # process 1 with process 0's results: the whole split, in order
  assert both["num_examples"] == alone["num_examples"] == 4
  assert both["scalars"] == pytest.approx(alone["scalars"], rel=1e-6)
  if name == "gaddy_recognition":
    assert ((tmp_path / "both" / "transcripts.tsv").read_text()
            == (tmp_path / "alone" / "transcripts.tsv").read_text())
  else:
    names = sorted(f.name for f in (tmp_path / "alone" / "mfcc_pred").iterdir())
    assert names == [f"{i:05d}.npy" for i in range(4)]
    for f in names:
      np.testing.assert_allclose(np.load(tmp_path / "both" / "mfcc_pred" / f),
                                 np.load(tmp_path / "alone" / "mfcc_pred" / f), rtol=1e-6)
