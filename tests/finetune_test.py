"""Fine-tuning: end-to-end run, pretrained init, LR scales, frozen backbone, clear errors."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from configs import finetune as finetune_configs
from configs import pretrain
from tinymyo_jax import checkpointing, finetune, tasks, train


def tiny_task(**overrides):
  c = finetune_configs.get_config("uci").unlock()
  c.data.sources = (("synthetic", "8x200:64:6", 1.0),)
  c.model.variant = "test"
  c.batch_size = 16
  c.finetune.num_epochs = 2
  c.finetune.warmup_epochs = 1
  c.init_from = ""
  c.progress_bar = False
  for k, v in overrides.items():
    node, _, leaf = k.rpartition(".")
    (c if not node else c[node])[leaf] = v
  return c


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("pretrain")
  train.train_and_evaluate(pretrain.get_config("smoke"), str(workdir))
  return str(workdir / "checkpoints")


def test_finetune_from_pretrained_writes_summary_report_and_best(tmp_path, pretrained):
  summary = finetune.run(tiny_task(init_from=pretrained), str(tmp_path))
  assert summary["init_from"] == pretrained
  assert 0.0 <= summary["test"]["accuracy"]["mean"] <= 1.0
  assert summary["steps_per_epoch"] == 4 and summary["runs"][0]["steps"] == 8
  # Synthetic windows all come from "subject 0": its accuracy is the split's.
  assert summary["test"]["accuracy_by_subject"] == {"0": summary["test"]["accuracy"]}
  assert finetune.scores_line(summary["test"]).startswith("accuracy ")
  assert "accuracy_by_subject" not in finetune.scores_line(summary["test"])
  on_disk = json.loads((tmp_path / "summary.json").read_text())
  assert on_disk["task"] == "uci"
  report = (tmp_path / "report.md").read_text()
  assert "| accuracy |" in report and "confusion.png" in report
  assert (tmp_path / "seed_0" / "confusion.png").stat().st_size > 1000
  params, cfg, meta = checkpointing.load_params(summary["runs"][0]["best_dir"])
  assert cfg.head == "classification" and cfg.num_outputs == 6
  assert meta["data"]["normalization"] == "standardize" and meta["task_name"] == "uci"
  assert len(meta["input_stats"][0]["mean"]) == 8  # training-split channel statistics
  # The encoder started from the pretrained weights, not from a fresh init.
  pre, _, _ = checkpointing.load_params(pretrained)
  start = np.asarray(pre["patch_embed"]["kernel"])
  assert np.abs(np.asarray(params["patch_embed"]["kernel"]) - start).max() < 0.05


def test_frozen_backbone_trains_only_the_head(tmp_path, pretrained):
  summary = finetune.run(tiny_task(init_from=pretrained, **{"finetune.freeze_backbone": True}),
                         str(tmp_path))
  pre, _, _ = checkpointing.load_params(pretrained)
  tuned, _, _ = checkpointing.load_params(summary["runs"][0]["best_dir"])
  np.testing.assert_array_equal(tuned["blocks"]["0"]["attn"]["qkv"]["kernel"],
                                pre["blocks"]["0"]["attn"]["qkv"]["kernel"])
  np.testing.assert_array_equal(tuned["norm"]["scale"], pre["norm"]["scale"])


def test_frozen_encoder_forward_has_no_encoder_gradient():
  from flax import nnx
  from tinymyo_jax.models.tinymyo import create_model
  model_cfg = train.model_config_from(tiny_task())
  model = create_model(model_cfg, seed=0)
  graphdef, params = nnx.split(model, nnx.Param)
  x = np.random.default_rng(0).standard_normal((4, 8, 200)).astype(np.float32)
  batch = {"emg": x, "label": np.arange(4) % 6}

  def grads(frozen):
    def loss(p):
      return tasks.classification_loss(nnx.merge(graphdef, p), batch, jax.random.key(1),
                                       True, frozen_encoder=frozen)[0]
    return nnx.to_pure_dict(jax.grad(loss)(params))

  frozen, full = grads(True), grads(False)
  assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(frozen["blocks"]))
  assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(frozen["patch_embed"]))
  assert any(np.any(np.asarray(g) != 0) for g in jax.tree.leaves(frozen["head"]))
  assert any(np.any(np.asarray(g) != 0) for g in jax.tree.leaves(full["blocks"]))


def test_layerwise_lr_decay_scales():
  params = {"patch_embed": {"kernel": np.zeros(1)}, "mask_token": np.zeros(1),
            "blocks": {0: {"w": np.zeros(1)}, 1: {"w": np.zeros(1)}},
            "norm": {"scale": np.zeros(1)}, "head": {"classifier": {"kernel": np.zeros(1)}}}
  scales = tasks.lr_scales(params, num_layers=2, decay=0.5, freeze_backbone=False)
  assert scales["head"]["classifier"]["kernel"] == 1.0 and scales["norm"]["scale"] == 1.0
  assert scales["blocks"][1]["w"] == 0.5 and scales["blocks"][0]["w"] == 0.25
  assert scales["patch_embed"]["kernel"] == 0.125 and scales["mask_token"] == 0.125
  frozen = tasks.lr_scales(params, num_layers=2, decay=0.5, freeze_backbone=True)
  assert frozen["head"]["classifier"]["kernel"] == 1.0
  assert sorted(jax.tree.leaves(frozen)) == [0.0] * 5 + [1.0]


def test_backbone_mismatch_fails_before_training(tmp_path, pretrained):
  with pytest.raises(ValueError, match="num_layers"):
    finetune.run(tiny_task(init_from=pretrained, **{"model.variant": "small"}), str(tmp_path))
  assert not (tmp_path / "seed_0").exists()


def test_unknown_task_and_missing_dataset_and_channels(tmp_path):
  with pytest.raises(ValueError, match="unknown config preset 'db99'"):
    finetune_configs.get_config("db99")
  c = finetune_configs.get_config("db5").unlock()
  c.data.data_dir, c.init_from = str(tmp_path / "nothing"), ""
  with pytest.raises(Exception, match="ninapro_db5.*(not built|has no)|build"):
    finetune.run(c, str(tmp_path / "run"))
  wide = tiny_task(**{"data.sources": (("synthetic", "12x200:32:6", 1.0),)})
  with pytest.raises(ValueError, match="12 channels"):
    finetune.run(wide, str(tmp_path / "run2"))


def test_missing_pretrained_checkpoint_is_an_error(tmp_path):
  with pytest.raises(FileNotFoundError, match="does-not-exist"):
    finetune.run(tiny_task(init_from=str(tmp_path / "does-not-exist")), str(tmp_path))


def test_a_checkpoint_with_the_tasks_head_gives_its_head_too(tmp_path, pretrained):
  from tinymyo_jax.models.tinymyo import create_model, decode_variant
  from flax import nnx
  cfg = decode_variant("test", head="classification", num_channels=8, num_outputs=6)
  params = nnx.to_pure_dict(nnx.state(create_model(cfg, seed=3), nnx.Param))
  checkpointing.save_params(str(tmp_path / "clf"), params, cfg)
  fresh = nnx.to_pure_dict(nnx.state(create_model(cfg, seed=4), nnx.Param))
  shardings = jax.tree.map(lambda _: None, fresh)
  init, _ = finetune.pretrained_encoder(str(tmp_path / "clf"), cfg)
  out = init(fresh, shardings)
  np.testing.assert_array_equal(out["head"]["classifier"]["kernel"],
                                params["head"]["classifier"]["kernel"])
  # A pretraining checkpoint (reconstruction head) leaves the task's fresh head alone.
  init, _ = finetune.pretrained_encoder(pretrained, cfg)
  assert init(fresh, shardings)["head"] is fresh["head"]
