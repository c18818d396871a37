"""Import -> export round trips are bit-identical per tensor; bad checkpoints fail cleanly."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

pytest.importorskip("safetensors")
from safetensors import safe_open  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402

from export import import_torch, to_torch  # noqa: E402
from tinymyo_jax.models import weight_layouts as wm  # noqa: E402
from tests.export.conftest import CLASSIFIER_ST, PRETRAIN_ST, need  # noqa: E402
from tinymyo_jax.checkpointing import CheckpointError, load_params, save_params  # noqa: E402
from tinymyo_jax.models.tinymyo import decode_variant  # noqa: E402


def _assert_bit_identical(a: dict, b: dict) -> None:
  assert sorted(a) == sorted(b)
  for k in a:
    assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
    assert a[k].tobytes() == b[k].tobytes(), f"{k} differs"


@pytest.mark.parametrize("fixture", ["pretrain", "classifier"])
def test_official_file_survives_import_and_export_bit_for_bit(fixture, request, tmp_path):
  source = need(PRETRAIN_ST if fixture == "pretrain" else CLASSIFIER_ST)
  ckpt = request.getfixturevalue(f"{fixture}_ckpt")
  out = tmp_path / "out.safetensors"
  assert to_torch.main(["--ckpt", ckpt, "--out", str(out)]) == 0
  _assert_bit_identical(load_file(str(source)), load_file(str(out)))
  with safe_open(str(out), framework="np") as f:
    meta = json.loads(f.metadata()[import_torch.CONFIG_METADATA_KEY])
  assert meta["rope_mode"] == "released"
  bare = tmp_path / "bare.safetensors"
  assert to_torch.main(["--ckpt", ckpt, "--out", str(bare), "--no_prefix"]) == 0
  assert all(not k.startswith("model.") for k in load_file(str(bare)))


@pytest.mark.parametrize("head,extra", [
    ("regression", dict(num_channels=8, num_outputs=5, target_len=120, dropout=0.2)),
    ("classification", dict(num_channels=4, num_outputs=3, reduction="mean")),
])
def test_flax_checkpoint_round_trips_with_its_config(tmp_path, head, extra):
  from flax import nnx

  from tinymyo_jax.models.tinymyo import create_model

  config = decode_variant("test", head=head, rope_mode="time", **extra)
  params = nnx.to_pure_dict(nnx.state(create_model(config, seed=3), nnx.Param))
  save_params(str(tmp_path / "ck"), params, config)
  st = tmp_path / "reg.safetensors"
  to_torch.export_checkpoint(str(tmp_path / "ck"), str(st))
  keys = load_file(str(st))
  if head == "regression":
    assert keys["model.model_head.regressor.3.weight"].shape == (256, 1, 3)  # depthwise conv
  else:
    assert keys["model.model_head.classifier.weight"].shape == (3, 48)  # mean: no channel axis
  import_torch.import_safetensors(str(st), str(tmp_path / "back"))
  back, back_config, _ = load_params(str(tmp_path / "back"))
  assert back_config == config  # rope mode, target length, reduction... restored
  ref, got = wm.flatten_paths(params), wm.flatten_paths(back)
  assert ref.keys() == got.keys()
  assert all(np.asarray(ref[k]).tobytes() == np.asarray(got[k]).tobytes() for k in ref)


def test_checkpoint_without_finished_step_fails_and_writes_nothing(tmp_path, capsys):
  ckpt = tmp_path / "ck"
  (ckpt / "0.orbax-checkpoint-tmp-123").mkdir(parents=True)  # an interrupted save
  out = tmp_path / "m.safetensors"
  assert to_torch.main(["--ckpt", str(ckpt), "--out", str(out)]) == 1
  assert "has no finished step" in capsys.readouterr().err
  assert not out.exists() and os.listdir(tmp_path) == ["ck"]
  with pytest.raises(CheckpointError, match="does not exist"):
    to_torch.export_checkpoint(str(tmp_path / "nothing"), str(out))
