"""Checkpoints written by an older commit (tests/fixtures/checkpoints_4ad0ead) still load: a
fine-tuned classifier is tested and continued from, a training checkpoint resumes."""

from __future__ import annotations

import shutil

from configs import finetune as finetune_configs
from configs import pretrain as pretrain_configs
from tests.conftest import REPO
from tinymyo_jax import checkpointing, evaluate, finetune, train

FIXTURES = REPO / "tests" / "fixtures" / "checkpoints_4ad0ead"


def classifier_config(**overrides):
  c = finetune_configs.get_config("uci").unlock()
  c.data.sources = (("synthetic", "8x200:64:6", 1.0),)
  c.model.variant = "test"
  c.batch_size = 16
  c.finetune.update(num_epochs=1, warmup_epochs=1)
  c.init_from = ""
  c.progress_bar = False
  c.update(overrides)
  return c


def test_an_old_fine_tuned_classifier_is_tested_and_continued(tmp_path):
  best = str(FIXTURES / "classifier_best")
  params, model_cfg, meta = checkpointing.load_params(best)
  assert model_cfg.head == "classification" and model_cfg.num_outputs == 6
  assert meta["task"] == "classification" and meta["input_stats"]
  result = evaluate.evaluate_checkpoint(classifier_config(), best, str(tmp_path / "test"))
  assert result["num_examples"] == 64 and 0.0 <= result["scalars"]["accuracy"] <= 1.0
  summary = finetune.run(classifier_config(init_from=best), str(tmp_path / "continued"))
  assert summary["init_from"] == best and summary["runs"][0]["steps"] == 4


def test_an_old_training_checkpoint_resumes(tmp_path, capsys):
  shutil.copytree(FIXTURES / "pretrain", tmp_path / "checkpoints")
  config = pretrain_configs.get_config("smoke").unlock()
  config.update(total_steps=4, checkpoint_every=2, eval_every=2, progress_bar=False,
                allow_config_change=True)  # the fixture ran total_steps=2
  summary = train.train_and_evaluate(config, str(tmp_path))
  assert "resumed from step 2" in capsys.readouterr().out
  assert summary["steps"] == 4 and summary["final_eval_loss"] < 1.0
