"""Fine-tuning: end-to-end run, pretrained init, LR scales, frozen backbone, clear errors,
re-runs and SIGKILL resumes, the pretrained checkpoint's data spec."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from configs import finetune as finetune_configs
from configs import pretrain
from tests.conftest import REPO
from tinymyo_jax import checkpointing, finetune, reporting, tasks, train
from tinymyo_jax.tasks import classification


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


def test_fewer_layers_than_the_checkpoint_keep_its_first_blocks(tmp_path, pretrained, capsys):
  summary = finetune.run(tiny_task(init_from=pretrained, **{"finetune.freeze_backbone": True,
                                                            "model.num_layers": 1}),
                         str(tmp_path))
  assert "keeping the first 1 of its 2 blocks" in capsys.readouterr().out
  pre, _, _ = checkpointing.load_params(pretrained)
  tuned, cfg, _ = checkpointing.load_params(summary["runs"][0]["best_dir"])
  assert cfg.num_layers == 1 and sorted(tuned["blocks"]) == ["0"]
  np.testing.assert_array_equal(tuned["blocks"]["0"]["mlp"]["fc1"]["kernel"],
                                pre["blocks"]["0"]["mlp"]["fc1"]["kernel"])
  # The blocks the run keeps count for layer decay: block 0 sits right under the top.
  scales = tasks.core.finetune_lr_scale_fn(tiny_task(**{"model.num_layers": 1}))(tuned)
  assert scales["blocks"]["0"]["mlp"]["fc1"]["kernel"] == pytest.approx(0.9)
  with pytest.raises(ValueError, match=r"'num_layers': \(2, 3\)"):  # deeper: no truncation
    finetune.run(tiny_task(init_from=pretrained, **{"model.num_layers": 3}), str(tmp_path / "x"))


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
      return classification.classification_loss(nnx.merge(graphdef, p), batch, jax.random.key(1),
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
  scales = tasks.core.lr_scales(params, num_layers=2, decay=0.5, freeze_backbone=False)
  assert scales["head"]["classifier"]["kernel"] == 1.0 and scales["norm"]["scale"] == 1.0
  assert scales["blocks"][1]["w"] == 0.5 and scales["blocks"][0]["w"] == 0.25
  assert scales["patch_embed"]["kernel"] == 0.125 and scales["mask_token"] == 0.125
  frozen = tasks.core.lr_scales(params, num_layers=2, decay=0.5, freeze_backbone=True)
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


def tree_state(path) -> dict[str, int]:
  """{relative file path: mtime_ns} of every file under `path`."""
  return {str(p.relative_to(path)): p.stat().st_mtime_ns for p in path.rglob("*") if p.is_file()}


@pytest.mark.parametrize("patience,stops_early", [(1, True), (50, False)])
def test_rerun_of_a_finished_run_keeps_best_and_its_test_metrics(tmp_path, capsys, patience,
                                                                  stops_early):
  config = tiny_task(early_stopping_patience=patience, **{"finetune.num_epochs": 4,
                                                          "optimizer.peak_lr": 1e-2})
  first = finetune.run(config, str(tmp_path))
  run = first["runs"][0]
  assert (run["steps"] < 16) == stops_early and run["best_step"] is not None
  seed_dir = tmp_path / "seed_0"
  # The early-stopping state travels with the last checkpoint (an early stop is checkpointed).
  _, _, meta = checkpointing.load_params(str(seed_dir / "checkpoints"))
  assert meta["step"] == run["steps"]
  assert meta["progress"]["best_step"] == run["best_step"]
  assert meta["progress"]["best_eval_loss"] == pytest.approx(run["best_eval_loss"])
  assert meta["progress"]["evals_since_best"] == (
      patience if stops_early else (run["steps"] - run["best_step"]) // 4)
  best, rows = tree_state(seed_dir / "best"), reporting.read_metrics(str(seed_dir))
  capsys.readouterr()
  again = finetune.run(config, str(tmp_path))
  out = capsys.readouterr().out
  assert ("run already early-stopped at step" if stops_early else
          "run already finished at step 16 of 16") in out and "not training again" in out
  assert tree_state(seed_dir / "best") == best
  assert reporting.read_metrics(str(seed_dir)) == rows  # no step trained
  assert again["runs"][0]["best_step"] == run["best_step"]
  assert again["runs"][0]["steps"] == run["steps"]
  assert again["test"] == first["test"]
  assert json.loads((tmp_path / "summary.json").read_text())["runs"][0]["best_step"] == (
      run["best_step"])


@pytest.fixture(scope="module")
def uci_dummy(tmp_path_factory):
  """The uci_emg dummy recordings built at 1 kHz (`default`) and 200 Hz (`hz200`)."""
  from data_builders import build
  data_dir = tmp_path_factory.mktemp("tfds")
  for config in ("default", "hz200"):
    build.build("uci_emg", manual_dir=REPO / "data_builders" / "uci_emg" / "dummy_data",
                data_dir=data_dir, config=config)
  return str(data_dir)


@pytest.mark.integration
def test_sigkill_mid_epoch_resumes_to_the_same_test_metrics(tmp_path, uci_dummy, spawn):
  # uci on the dummy build: 32 training windows, 4 steps per epoch, evaluation and checkpoint
  # at every epoch's end, early stopping with patience 2 over at most 8 epochs.
  args = ["-m", "tinymyo_jax.main", "--config=configs/finetune.py:uci,smoke",
          f"--config.data.data_dir={uci_dummy}", "--config.batch_size=8",
          "--config.total_steps=0", "--config.eval_every=0", "--config.checkpoint_every=0",
          "--config.eval_batches=0", "--config.finetune.num_epochs=8",
          "--config.finetune.warmup_epochs=1", "--config.optimizer.warmup_steps=0",
          "--config.optimizer.peak_lr=5e-3", "--config.early_stopping_patience=2"]
  env = dict(os.environ, PYTHONPATH=str(REPO))

  def run(workdir):
    subprocess.run([sys.executable, *args, f"--workdir={workdir}"], cwd=REPO, env=env,
                   check=True, capture_output=True)
    return json.loads((workdir / "summary.json").read_text())

  reference = run(tmp_path / "straight")
  workdir = tmp_path / "killed"
  proc = spawn([sys.executable, *args, f"--workdir={workdir}"], cwd=REPO, env=env,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  seed_dir = workdir / "seed_0"
  deadline = time.time() + 300

  def trained_steps():  # complete rows only: the run is writing the file
    path = seed_dir / "metrics.jsonl"
    lines = path.read_text().split("\n")[:-1] if path.exists() else []
    return [row["step"] for row in map(json.loads, lines) if "train/loss" in row]

  # Kill inside the second epoch: after the first checkpoint (step 4), before step 8.
  while not ((seed_dir / "checkpoints" / "4").is_dir() and max(trained_steps() or [0]) >= 5):
    assert proc.poll() is None and time.time() < deadline, "run ended before step 5"
    time.sleep(0.005)
  proc.send_signal(signal.SIGKILL)
  assert proc.wait() == -signal.SIGKILL
  assert not (workdir / "summary.json").exists(), "the run was not interrupted"
  killed_at = max(trained_steps())
  resumed = run(workdir)
  assert killed_at < reference["runs"][0]["steps"]
  for key in ("steps", "best_step", "best_eval_loss"):
    assert resumed["runs"][0][key] == pytest.approx(reference["runs"][0][key], rel=1e-5), key
  for name, value in reference["runs"][0]["test"].items():
    assert resumed["runs"][0]["test"][name] == pytest.approx(value, rel=1e-5), name


def test_data_spec_of_the_pretrained_checkpoint_is_compared(tmp_path, uci_dummy, capsys,
                                                            monkeypatch):
  # 2 steps of masked pretraining on the 1 kHz windows (min-max normalization).
  config = pretrain.get_config("smoke").unlock()
  config.data.sources, config.data.data_dir = (("uci_emg", "default", 1.0),), uci_dummy
  config.total_steps = config.eval_every = config.checkpoint_every = 2
  config.eval_batches = 1
  train.train_and_evaluate(config.lock(), str(tmp_path / "pre"))
  ckpt = str(tmp_path / "pre" / "checkpoints")
  assert checkpointing.load_meta(ckpt)["data_spec"] == {
      "sources": ["uci_emg:default"], "sample_rate_hz": 1000.0, "window": 1000,
      "num_channels": 8, "normalization": "minmax"}

  def task(name, init_from):
    c = finetune_configs.get_config(f"{name},smoke").unlock()
    c.data.data_dir, c.init_from = uci_dummy, init_from
    return c

  # 200 Hz windows: printed, in summary.json and report.md.
  capsys.readouterr()
  other = finetune.run(task("uci_200hz", ckpt), str(tmp_path / "hz200"))
  line = ("sample_rate_hz: checkpoint 1000.0, task 200.0; window: checkpoint 1000, task 200; "
          "normalization: checkpoint 'minmax', task 'standardize'")
  assert line in capsys.readouterr().out
  on_disk = json.loads((tmp_path / "hz200" / "summary.json").read_text())
  assert on_disk["init_from"] == ckpt
  assert on_disk["init_data_diffs"]["sample_rate_hz"] == {"checkpoint": 1000.0, "task": 200.0}
  assert on_disk["init_data_diffs"]["sources"] == {"checkpoint": ["uci_emg:default"],
                                                   "task": ["uci_emg:hz200"]}
  assert "num_channels" not in on_disk["init_data_diffs"]  # 8 and 8: only what differs
  assert other["init_data_diffs"] == on_disk["init_data_diffs"]
  assert line in (tmp_path / "hz200" / "report.md").read_text()

  def check(name, init_from):
    config = task(name, init_from)
    return finetune.check_init_data(config, finetune.resolve_init(init_from),
                                    train.data_spec(config))

  # The same windows: only the normalization differs.
  assert check("uci", ckpt) == (ckpt, {"normalization": {"checkpoint": "minmax",
                                                         "task": "standardize"}}, None)
  # init_from=auto leaves a checkpoint of another sample rate alone, and says so.
  monkeypatch.setattr(finetune, "DEFAULT_PRETRAINED", ckpt)
  capsys.readouterr()
  path, diffs, note = check("uci_200hz", "auto")
  assert path is None and diffs is None
  assert "pretrained on data at 1000.0 Hz, the task's data is at 200.0 Hz" in note
  assert note in capsys.readouterr().out
  assert finetune.init_report_lines({"init_note": note, "init_data_diffs": None}) == [
      f"- note: {note}"]
  assert check("uci", "auto")[0] == ckpt
  # A checkpoint that predates data specs is used with a note that it cannot be checked.
  params, model_cfg, _ = checkpointing.load_params(ckpt)
  checkpointing.save_params(str(tmp_path / "old"), params, model_cfg)
  path, diffs, note = check("uci_200hz", str(tmp_path / "old"))
  assert path == str(tmp_path / "old") and diffs is None and "records no data spec" in note
