"""One task table (configs/finetune.py) for export and GAP9 codegen; `make export` without TASK."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("onnx")  # export.gap9.codegen writes a QDQ ONNX too

from configs import finetune as finetune_configs  # noqa: E402
from export import tasks  # noqa: E402
from export.gap9 import codegen  # noqa: E402
from tests.conftest import REPO  # noqa: E402
from tinymyo_jax.models.tinymyo import decode_variant  # noqa: E402

UCI_NAMES = ["uci", "uci,fold0", "uci_200hz,paper", "uci_pooled", "uci_200hz_pooled"]


def _classifier(channels=8, outputs=6):
  return decode_variant("test", head="classification", num_channels=channels,
                        num_outputs=outputs)


@pytest.mark.parametrize("name", sorted(finetune_configs.TASKS) + UCI_NAMES[1:3])
def test_every_finetuning_task_name_is_known_with_its_head_shape(name):
  config = finetune_configs.get_config(name)
  task = tasks.lookup(name)
  assert task.finetuning and task.task_type == config.task
  assert (task.num_channels, task.num_outputs) == (config.model.num_channels,
                                                    config.model.num_outputs)
  assert task.dataset == config.data.sources[0][0]
  assert task.head == (config.model.head if config.task in tasks.HEADS else None)


def test_unknown_names_are_refused_with_the_list():
  with pytest.raises(tasks.TaskError, match=r"unknown task 'uci_emg'; known: fine-tuning tasks "
                                            r"\[.*'db5'.*'uci'.*\].*outputs \[.*'encoder'"):
    tasks.lookup("uci_emg")
  with pytest.raises(tasks.TaskError, match=r"task 'uci,fold9': unknown UCI split 'fold9'"):
    tasks.lookup("uci,fold9")


def test_onnx_export_takes_finetuning_task_names_and_checks_the_head():
  from export import to_onnx

  for name in UCI_NAMES:
    assert to_onnx.resolve_task(name, _classifier()) == ("head", "logits")
  assert to_onnx.resolve_task("db5", _classifier(16, 53)) == ("head", "logits")
  with pytest.raises(to_onnx.OnnxExportError, match=r"task 'db5' needs a classification head "
                                                    r"on 16 channels with 53 outputs; the "
                                                    r"checkpoint has .* 8 channels with 6"):
    to_onnx.resolve_task("db5", _classifier())
  with pytest.raises(to_onnx.OnnxExportError, match=r"'gaddy_recognition' trains a "
                                                    r"speech_recognition model"):
    to_onnx.resolve_task("gaddy_recognition", _classifier())
  with pytest.raises(to_onnx.OnnxExportError, match="unknown task 'uci_emg'"):
    to_onnx.resolve_task("uci_emg", _classifier())


def test_gap9_codegen_takes_uci_classification_tasks():
  assert codegen.GAP9_TASKS == ("uci", "uci_200hz", "uci_200hz_pooled", "uci_pooled")
  for name in [None, *UCI_NAMES]:
    codegen.check_task(name, _classifier())
  for name, why in [("db5", "trains on ninapro_db5"), ("db8", "trains on ninapro_db8"),
                    ("encoder", "is no classification task")]:
    with pytest.raises(tasks.TaskError, match=rf"task '{name}' {why}; GAP9 codegen takes a "
                                              r"UCI-EMG classification task: \['uci', "):
      codegen.check_task(name, _classifier())
  with pytest.raises(tasks.TaskError, match="deploys classifiers; the checkpoint has a "
                                            "'reconstruction' head"):
    codegen.check_task(None, decode_variant("test"))
  with pytest.raises(tasks.TaskError, match="needs a classification head on 8 channels with 6"):
    codegen.check_task("uci", _classifier(8, 5))


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize("target", ["export", "gap9"])
def test_make_passes_task_only_when_the_user_gives_one(target):
  env = {k: v for k, v in os.environ.items() if k not in ("TASK", "MAKEFLAGS")}

  def command(*args, **extra):
    out = subprocess.run(["make", "-n", "-o", ".venv/.installed", target, "CKPT=ck", *args],
                         cwd=REPO, env=env | extra, capture_output=True, text=True, check=True)
    return " ".join(out.stdout.split())

  assert "--task" not in command()  # not the fine-tuning default TASK=uci
  assert "--task db5" in command("TASK=db5")
  assert "--task uci_200hz" in command(TASK="uci_200hz")
  assert "--task" not in command("TASK=")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_export_of_a_pretraining_checkpoint_exports_its_own_head(tmp_path):
  pytest.importorskip("onnxruntime")
  pytest.importorskip("torch")
  from flax import nnx

  from tinymyo_jax.checkpointing import save_params
  from tinymyo_jax.models.tinymyo import create_model

  config = decode_variant("test")  # reconstruction head, as `make pretrain` writes
  params = nnx.to_pure_dict(nnx.state(create_model(config, seed=0), nnx.Param))
  ckpt = tmp_path / "pretrain" / "checkpoints"
  save_params(str(ckpt), params, config, step=40)
  env = {k: v for k, v in os.environ.items() if k not in ("TASK", "MAKEFLAGS")}
  proc = subprocess.run(["make", "-o", ".venv/.installed", "export", f"CKPT={ckpt}",
                         f"OUT={tmp_path / 'out'}", f"PY={sys.executable}"], cwd=REPO,
                        env=env | {"PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                        timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "PyTorch vs Flax max-abs (uci_emg, [2, 16, 1000])" in proc.stdout
  report = json.loads((tmp_path / "out" / "model.onnx.json").read_text())
  assert report["passed"] and report["task"] == "reconstruction"
  assert report["output"] == "reconstruction"
