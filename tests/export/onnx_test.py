"""ONNX export through PyTorch, verified with onnxruntime against Flax; the one-shot driver."""

from __future__ import annotations

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("torch")

from export import all as export_all  # noqa: E402
from export import to_onnx  # noqa: E402
from tinymyo_jax.checkpointing import save_params  # noqa: E402
from tinymyo_jax.models.tinymyo import decode_variant  # noqa: E402


@pytest.fixture(scope="module")
def small_ckpt(tmp_path_factory) -> str:
  """A small 8-channel, 6-class classifier checkpoint (rope mode `time`)."""
  from flax import nnx

  from tinymyo_jax.models.tinymyo import create_model

  config = decode_variant("test", head="classification", num_channels=8, num_outputs=6)
  params = nnx.to_pure_dict(nnx.state(create_model(config, seed=1), nnx.Param))
  path = tmp_path_factory.mktemp("onnx") / "ck"
  save_params(str(path), params, config)
  return str(path)


def _shape(model, which="input"):
  value = (model.graph.input if which == "input" else model.graph.output)[0]
  return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def test_static_export_is_checked_verified_and_reported(small_ckpt, tmp_path, capsys):
  out = tmp_path / "model.onnx"
  rc = to_onnx.main(["--ckpt", small_ckpt, "--task", "classification", "--channels", "8",
                     "--samples", "1000", "--out", str(out)])
  assert rc == 0
  report = json.loads((tmp_path / "model.onnx.json").read_text())
  assert report["passed"] and report["checker"] == "passed"
  assert report["max_abs_onnxruntime_vs_flax"] < 1e-4
  assert report["verified_batches"][0]["torch_vs_flax"] < 1e-5
  assert '"passed": true' in capsys.readouterr().out
  model = onnx.load(str(out))
  assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
  assert _shape(model) == [1, 8, 1000] and _shape(model, "output") == [1, 6]
  assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.onnx.json"]


def test_dynamic_batch_encoder_export(small_ckpt, tmp_path):
  report = to_onnx.export_onnx(small_ckpt, str(tmp_path / "enc.onnx"), task="encoder",
                               dynamic_batch=True, batch=2)
  assert [r["batch"] for r in report["verified_batches"]] == [2, 4]
  assert report["verified_batches"][1]["output_shape"] == [4, 400, 48]
  model = onnx.load(str(tmp_path / "enc.onnx"))
  assert isinstance(_shape(model)[0], str) and _shape(model)[1:] == [8, 1000]


@pytest.mark.parametrize("args,match", [
    (["--task", "pretrain"], "task 'pretrain' needs a reconstruction head, but the checkpoint "
                             "has a classification head"),
    (["--task", "sleep"], "unknown task 'sleep'"),
    (["--channels", "16"], "fuses 8 channels; --channels 16 does not fit it"),
    (["--samples", "990"], "--samples 990 must be a positive multiple of the patch size 20"),
    (["--opset", "13"], "opset 13 is below the supported minimum of 17"),
])
def test_bad_requests_fail_with_one_clear_error(small_ckpt, tmp_path, capsys, args, match):
  out = tmp_path / "m.onnx"
  assert to_onnx.main(["--ckpt", small_ckpt, "--out", str(out), *args]) == 1
  assert match in capsys.readouterr().err
  assert not out.exists()


def test_task_lookup_maps_finetuning_tasks_to_heads():
  config = decode_variant("test", head="regression", num_channels=16, num_outputs=5)
  assert to_onnx.resolve_task("db8", config) == ("head", "regression")
  assert to_onnx.resolve_task(None, config) == ("head", "regression")
  assert to_onnx.resolve_task("encoder", config) == ("encoder", "latent")
  with pytest.raises(to_onnx.OnnxExportError, match="needs a classification head"):
    to_onnx.resolve_task("uci", config)


def test_one_shot_driver_writes_all_files_and_prints_parity(small_ckpt, tmp_path, capsys):
  out_dir = tmp_path / "exp"
  assert export_all.main(["--ckpt", small_ckpt, "--out_dir", str(out_dir)]) == 0
  printed = capsys.readouterr().out
  assert "exported file re-imports bit-identical: True" in printed
  assert "PyTorch vs Flax max-abs (uci_emg, [2, 8, 1000])" in printed
  summary = json.loads((out_dir / "export_report.json").read_text())
  assert summary["torch"]["passed"] and summary["onnx"]["passed"]
  assert max(summary["torch"]["torch_vs_flax"].values()) < 1e-5
  assert set(summary["files"]) == {"model.safetensors", "model.onnx", "model.onnx.json"}
  assert all(size > 0 for size in summary["files"].values())
  assert np.isfinite(summary["onnx"]["max_abs_onnxruntime_vs_flax"])
