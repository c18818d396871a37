"""End-to-end pretraining runs: CLI outputs, resume after SIGKILL, corrupt checkpoints, bad input,
re-runs of finished runs and resumes under a changed config."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from configs import pretrain
from tests.conftest import REPO, run_python
from tinymyo_jax import checkpointing, input_pipeline, main, reporting, train

SMOKE = ["-m", "tinymyo_jax.main", "--config=configs/pretrain.py:smoke"]


def losses_by_step(workdir) -> dict[int, float]:
  return {row["step"]: row["train/loss"] for row in reporting.read_metrics(str(workdir))
          if "train/loss" in row}


def smoke_config(**overrides):
  config = pretrain.get_config("smoke").unlock()
  for k, v in overrides.items():
    node, _, leaf = k.rpartition(".")
    (config if not node else config[node])[leaf] = v
  return config.lock()


def longer(total_steps: int):
  """The smoke config continued to `total_steps` in the same workdir (a changed schedule)."""
  return smoke_config(total_steps=total_steps, allow_config_change=True)


@pytest.mark.integration
def test_cli_writes_summary_events_and_checkpoints(tmp_path):
  proc = run_python([*SMOKE, f"--workdir={tmp_path}"])
  assert "summary:" in proc.stdout and "checkpoints:" in proc.stdout
  summary = json.loads((tmp_path / "summary.json").read_text())
  for key in ("config_name", "steps", "final_train_loss", "final_eval_loss", "param_count",
              "examples_per_sec", "wall_time_sec"):
    assert summary[key] is not None, key
  assert summary["config_name"] == "smoke" and summary["steps"] == 6
  assert np.isfinite(summary["final_train_loss"]) and np.isfinite(summary["final_eval_loss"])
  assert summary["param_count"] == 40_052
  loop = summary["loop"]  # where the loop's wall time went: parts add up to at most the whole
  parts = [loop[f"{p}_seconds"] for p in ("data", "compile", "dispatch", "sync", "eval",
                                          "checkpoint")]
  assert all(v > 0 for v in parts) and sum(parts) <= loop["seconds"]
  assert loop["train_seconds"] == pytest.approx(
      loop["seconds"] - loop["eval_seconds"] - loop["checkpoint_seconds"])
  assert loop["examples_per_sec_overall"] < loop["examples_per_sec_training"]
  assert loop["examples"] == pytest.approx(loop["examples_per_sec_training"]
                                           * loop["train_seconds"])
  assert 0 < loop["data_fraction"] < 1
  assert list(tmp_path.glob("events.out.tfevents.*"))
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["3", "6"]
  params, model_cfg, meta = checkpointing.load_params(str(tmp_path / "checkpoints"))
  assert model_cfg.rope_mode == "time" and meta["step"] == 6
  rows = reporting.read_metrics(str(tmp_path))
  assert {"train/loss_masked", "train/loss_visible", "train/std_ratio", "eval/loss"} <= {
      k for r in rows for k in r}


@pytest.mark.integration
def test_sigkill_and_restart_reproduces_uninterrupted_losses(tmp_path, spawn):
  args = ["--config.total_steps=60", "--config.checkpoint_every=10", "--config.eval_every=1000"]
  run_python([*SMOKE, f"--workdir={tmp_path / 'straight'}", *args])
  reference = losses_by_step(tmp_path / "straight")
  assert sorted(reference) == list(range(1, 61))

  workdir = tmp_path / "killed"
  cmd = [sys.executable, *SMOKE, f"--workdir={workdir}", *args]
  env = dict(os.environ, PYTHONPATH=str(REPO))
  proc = spawn(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 300
  while not (workdir / "checkpoints" / "10").is_dir():
    assert proc.poll() is None and time.time() < deadline, "run ended before its first checkpoint"
    time.sleep(0.02)
  proc.send_signal(signal.SIGKILL)
  assert proc.wait() == -signal.SIGKILL
  first_part = losses_by_step(workdir)
  assert max(first_part) < 60, "the run was not interrupted"

  subprocess.run(cmd, cwd=REPO, env=env, check=True, capture_output=True)
  resumed = losses_by_step(workdir)  # later rows for a step overwrite earlier ones
  assert sorted(resumed) == list(range(1, 61))
  np.testing.assert_allclose([resumed[s] for s in range(1, 61)],
                             [reference[s] for s in range(1, 61)], rtol=1e-5)


def test_corrupt_latest_checkpoint_falls_back_to_previous(tmp_path):
  train.train_and_evaluate(smoke_config(), str(tmp_path))
  ckpt = tmp_path / "checkpoints"
  for f in (ckpt / "6" / "params").rglob("*"):
    if f.is_file():
      f.write_bytes(b"garbage")
  # A half-written save (orbax's temporary folder) must be ignored as well.
  (ckpt / "9.orbax-checkpoint-tmp-123").mkdir()
  summary = train.train_and_evaluate(longer(8), str(tmp_path))
  assert summary["steps"] == 8
  rows = [r["step"] for r in reporting.read_metrics(str(tmp_path)) if "train/loss" in r]
  assert rows[6:] == [4, 5, 6, 7, 8]  # resumed after step 3, not from 0


def test_all_checkpoints_corrupt_is_an_error_not_a_restart(tmp_path):
  train.train_and_evaluate(smoke_config(), str(tmp_path))
  for step in ("3", "6"):
    shutil.rmtree(tmp_path / "checkpoints" / step / "params")
    (tmp_path / "checkpoints" / step / "params").mkdir()
  with pytest.raises(checkpointing.CheckpointError, match="refusing to restart from step 0"):
    train.train_and_evaluate(longer(8), str(tmp_path))


def test_nan_batch_is_refused_and_checkpoint_untouched(tmp_path, monkeypatch):
  train.train_and_evaluate(smoke_config(), str(tmp_path))
  before = {p: p.stat().st_mtime_ns for p in (tmp_path / "checkpoints").rglob("*")}

  class NanSource(input_pipeline.SyntheticSource):
    def __getitem__(self, i):
      rec = super().__getitem__(i)
      rec["emg"][0, 5] = np.nan
      return rec

  monkeypatch.setattr(input_pipeline, "SyntheticSource", NanSource)
  with pytest.raises(ValueError, match="NaN/Inf"):
    train.train_and_evaluate(longer(9), str(tmp_path))
  after = {p: p.stat().st_mtime_ns for p in (tmp_path / "checkpoints").rglob("*")}
  assert before == after


@pytest.mark.integration
def test_pretraining_continues_from_another_runs_checkpoint(tmp_path):
  """`init_from` starts every param (reconstruction head included) at the checkpoint's: at a
  negligible LR the continued run ends where that checkpoint was, a fresh one does not."""
  train.train_and_evaluate(smoke_config(total_steps=2), str(tmp_path / "first"))
  first, _, _ = checkpointing.load_params(str(tmp_path / "first" / "checkpoints"))
  still = {"total_steps": 2, "seed": 7, "optimizer.peak_lr": 1e-12, "optimizer.init_lr": 0.0,
           "optimizer.end_lr": 0.0}
  runs, metas = {}, {}
  for name, init in (("continued", str(tmp_path / "first" / "checkpoints")), ("fresh", "")):
    config = smoke_config(init_from=init, **still)
    train.train_and_evaluate(config, str(tmp_path / name), **main.continued_from(config))
    runs[name], _, metas[name] = checkpointing.load_params(str(tmp_path / name / "checkpoints"))
  assert metas["continued"]["init_from"] == str(tmp_path / "first" / "checkpoints")
  assert "init_from" not in metas["fresh"]
  for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(runs["continued"]), strict=True):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=1e-6)
  assert not all(np.allclose(a, b) for a, b in zip(jax.tree.leaves(first),
                                                    jax.tree.leaves(runs["fresh"])))


def test_continued_pretraining_refuses_another_rope_mode(tmp_path):
  train.train_and_evaluate(smoke_config(total_steps=2), str(tmp_path / "first"))
  config = smoke_config(init_from=str(tmp_path / "first" / "checkpoints"),
                        **{"model.rope_mode": "flat"})
  with pytest.raises(ValueError, match="pretrained with rope_mode 'time', the config asks for "
                                       "'flat'"):
    main.continued_from(config)


def test_checkpoint_of_another_model_is_refused(tmp_path):
  train.train_and_evaluate(smoke_config(), str(tmp_path))
  config = longer(8).unlock()
  config.model.rope_mode = "flat"
  with pytest.raises(checkpointing.CheckpointError, match="written for model"):
    train.train_and_evaluate(config, str(tmp_path))


def test_resume_under_a_changed_config_lists_the_fields_unless_allowed(tmp_path):
  train.train_and_evaluate(smoke_config(), str(tmp_path))
  _, _, meta = checkpointing.load_params(str(tmp_path / "checkpoints"))
  assert meta["run_config"]["total_steps"] == 6 and meta["run_config"]["batch_size"] == 8
  assert meta["data_spec"] == {"sources": ["synthetic:8x200:128"], "sample_rate_hz": None,
                               "window": 200, "num_channels": 8, "normalization": "minmax"}
  changed = {"total_steps": 2000, "optimizer.peak_lr": 1e-3, "batch_size": 4, "name": "other",
             "optimizer.warmup_steps": 1, "data.eval_split": "test",
             "data.sources": (("synthetic", "8x200:64", 1.0),)}
  with pytest.raises(checkpointing.CheckpointError) as e:
    train.train_and_evaluate(smoke_config(**changed), str(tmp_path))
  message = str(e.value)
  for line in ("total_steps: checkpoint 6, config 2000", "optimizer.peak_lr: checkpoint 0.0001, "
               "config 0.001", "batch_size: checkpoint 8, config 4", "data.sources: checkpoint "
               "[['synthetic', '8x200:128', 1.0]], config [['synthetic', '8x200:64', 1.0]]",
               "name: checkpoint 'smoke', config 'other'", "optimizer.warmup_steps: checkpoint 2",
               "data.eval_split: checkpoint 'validation', config 'test'",
               "--config.allow_config_change=True"):
    assert line in message
  assert message.count("checkpoint ") == len(changed) + 1  # only what differs (+ the directory)
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["3", "6"]  # nothing trained
  # The override continues the run under the new schedule.
  summary = train.train_and_evaluate(longer(9), str(tmp_path))
  assert summary["steps"] == 9
  assert checkpointing.load_params(str(tmp_path / "checkpoints"))[2]["run_config"][
      "total_steps"] == 9


def test_rerun_of_a_finished_run_does_not_train_or_rewrite_the_summary(tmp_path, capsys):
  first = train.train_and_evaluate(smoke_config(), str(tmp_path))
  rows = reporting.read_metrics(str(tmp_path))
  again = train.train_and_evaluate(smoke_config(), str(tmp_path))
  assert "run already finished at step 6 of 6; not training again" in capsys.readouterr().out
  assert reporting.read_metrics(str(tmp_path)) == rows
  assert again == json.loads((tmp_path / "summary.json").read_text())
  assert again["final_eval_loss"] == first["final_eval_loss"] is not None
  # Killed after its last checkpoint but before summary.json: rebuilt from the checkpoint.
  (tmp_path / "summary.json").unlink()
  rebuilt = train.train_and_evaluate(smoke_config(), str(tmp_path))
  assert rebuilt["steps"] == 6 and rebuilt["final_eval_loss"] == first["final_eval_loss"]
  assert rebuilt["final_train_loss"] == first["final_train_loss"]
  assert json.loads((tmp_path / "summary.json").read_text())["steps"] == 6
  # A finished run moved to another folder reports where it is now (its paths are followed).
  moved = tmp_path.parent / (tmp_path.name + "_moved")
  os.rename(tmp_path, moved)
  there = train.train_and_evaluate(smoke_config(), str(moved))
  assert there["workdir"] == str(moved) and there["checkpoint_dir"].startswith(str(moved))
  assert there["final_eval_loss"] == first["final_eval_loss"]


def test_per_corpus_and_extra_eval_sets_are_logged(tmp_path):
  config = smoke_config(total_steps=3, eval_every=3, checkpoint_every=3).unlock()
  config.data.sources = (("synthetic", "8x200:64", 1.0), ("synthetic", "8x200:48", 2.0))
  config.data.eval_sources = (("synthetic", "8x200:40", "test"),)
  summary = train.train_and_evaluate(config.lock(), str(tmp_path))
  names = ("synthetic:8x200:64", "synthetic:8x200:48", "synthetic:8x200:40:test")
  assert sorted(summary["final_eval_metrics_by_set"]) == sorted(names)
  for metrics in summary["final_eval_metrics_by_set"].values():
    assert np.isfinite(metrics["loss"]) and metrics.keys() == summary["final_eval_metrics"].keys()
  # The extra set reads other windows (split "test"); every set is in the log at the eval step.
  by_set = summary["final_eval_metrics_by_set"]
  assert by_set[names[2]]["loss"] != by_set[names[0]]["loss"]
  rows = [r for r in reporting.read_metrics(str(tmp_path)) if r["step"] == 3]
  logged = {k for r in rows for k in r}
  assert {f"eval/{n}/loss" for n in names} <= logged
