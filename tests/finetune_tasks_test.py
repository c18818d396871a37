"""Each downstream task's smoke variant runs end to end on its builder's dummy data."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow_datasets as tfds

from configs import finetune as finetune_configs
from data_builders import registry
from tests.conftest import REPO
from tinymyo_jax import finetune


def build_dummy(name: str, config: str, data_dir) -> None:
  builder = registry.builder_class(name)(data_dir=str(data_dir), config=config,
                                         file_format="array_record")
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(REPO / "data_builders" / name / "dummy_data")))


@pytest.mark.parametrize("task", ["db5", "db8", "gaddy_recognition"])
def test_smoke_variant_trains_and_tests_on_dummy_data(task, tmp_path):
  config = finetune_configs.get_config(f"{task},smoke").unlock()
  name, builder_config, _ = config.data.sources[0]
  build_dummy(name, builder_config, tmp_path / "data")
  config.data.data_dir = str(tmp_path / "data")
  if task == "db8":
    config.data.eval_split = "test"  # the dummy recordings leave A2's repetition 10 empty
  summary = finetune.run(config, str(tmp_path / "run"))
  run = summary["runs"][0]
  assert summary["task"] == f"{task}_smoke" and run["steps"] == config.total_steps
  assert summary["init_from"] == "scratch" and summary["param_count"] < 1_000_000  # `test` model
  scalars = run["test"]
  if config.task == "classification":
    assert 0.0 <= scalars["accuracy"] <= 1.0 and 0.0 <= scalars["macro_f1"] <= 1.0
  elif config.task == "regression":
    assert np.isfinite(scalars["mae"]) and scalars["mae"] >= 0
  else:
    assert np.isfinite(scalars["cer"]) and scalars["cer"] >= 0
  assert (tmp_path / "run" / "report.md").exists()
