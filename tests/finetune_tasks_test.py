"""Each downstream task config runs end to end on its builder's dummy data (tiny model)."""

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


@pytest.mark.parametrize("task", ["db5", "db8"])
def test_task_trains_and_tests_on_dummy_data(task, tmp_path):
  config = finetune_configs.get_config(task).unlock()
  name, builder_config, _ = config.data.sources[0]
  build_dummy(name, builder_config, tmp_path / "data")
  config.data.data_dir = str(tmp_path / "data")
  config.model.variant = "test"
  config.batch_size = 4
  config.init_from = ""
  config.finetune.num_epochs = 1
  config.finetune.warmup_epochs = 0
  config.optimizer.warmup_steps = 1
  config.progress_bar = False
  if task == "db8":
    config.data.eval_split = "test"  # the dummy recordings leave A2's repetition 10 empty
  summary = finetune.run(config, str(tmp_path / "run"))
  scalars = summary["runs"][0]["test"]
  if config.task == "classification":
    assert 0.0 <= scalars["accuracy"] <= 1.0 and 0.0 <= scalars["macro_f1"] <= 1.0
  else:
    assert np.isfinite(scalars["mae"]) and scalars["mae"] >= 0
  assert (tmp_path / "run" / "report.md").exists()
