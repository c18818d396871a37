"""Importing official safetensors: config inference, fixture parity in Flax, bad input."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("safetensors")
from safetensors.numpy import load_file, save_file  # noqa: E402

from export import import_torch  # noqa: E402
from tinymyo_jax.models import weight_layouts as wm  # noqa: E402
from tests.export.conftest import CLASSIFIER_ST, FIXTURES, PRETRAIN_ST, need  # noqa: E402
from tinymyo_jax.checkpointing import load_params  # noqa: E402
from tinymyo_jax.models.tinymyo import count_params, create_model  # noqa: E402

TOL = 1e-5


def _max_abs(a, b) -> float:
  return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def test_pretrain_fixture_imports_as_released_tiny_and_reproduces_outputs(pretrain_ckpt):
  params, config, meta = load_params(pretrain_ckpt)
  assert (config.rope_mode, config.head, config.num_layers, config.embed_dim,
          config.num_heads) == ("released", "reconstruction", 8, 192, 3)
  assert meta["import_report"]["had_model_prefix"] is True
  model = create_model(config, params=params)
  assert count_params(model) == 3_567_380
  io = np.load(need(FIXTURES / "pretrain_io.npz"))
  assert _max_abs(model(io["x"]), io["out_nomask"]) < TOL
  assert _max_abs(model(io["x"], io["mask_patches"]), io["out_masked"]) < TOL
  assert _max_abs(model.encode(io["x"], io["mask_patches"]), io["latent_masked"]) < TOL


def test_classifier_fixture_imports_with_head_shape_and_reproduces_logits(classifier_ckpt):
  params, config, _ = load_params(classifier_ckpt)
  assert (config.head, config.num_channels, config.num_outputs, config.rope_mode) == (
      "classification", 8, 6, "released")
  model = create_model(config, params=params)
  assert count_params(model) == 3_572_742
  io = np.load(need(FIXTURES / "classifier_io.npz"))
  assert _max_abs(model(io["x"]), io["logits"]) < TOL


def test_keys_without_prefix_give_the_same_params(tmp_path):
  state = load_file(need(CLASSIFIER_ST))
  bare = tmp_path / "bare.safetensors"
  save_file({k.removeprefix("model."): v for k, v in state.items()}, str(bare))
  p_bare, c_bare, r_bare = import_torch.convert_state_dict(load_file(str(bare)))
  p_ref, c_ref, _ = import_torch.convert_state_dict(state)
  assert not r_bare["had_model_prefix"] and c_bare == c_ref
  flat_bare, flat_ref = wm.flatten_paths(p_bare), wm.flatten_paths(p_ref)
  assert flat_bare.keys() == flat_ref.keys()
  assert all(np.array_equal(flat_bare[k], flat_ref[k]) for k in flat_ref)


def _write(tmp_path, state, name="bad.safetensors") -> str:
  path = tmp_path / name
  save_file(state, str(path))
  return str(path)


def _expect_failure(src: str, dest, match: str, **kw):
  with pytest.raises(import_torch.ImportFailure, match=match):
    import_torch.import_safetensors(src, str(dest), **kw)
  assert not os.path.exists(dest)
  assert not [p for p in os.listdir(os.path.dirname(dest)) if ".tmp-" in p]


def test_unknown_extra_key_is_listed_and_can_be_ignored_explicitly(tmp_path):
  state = load_file(need(PRETRAIN_ST))
  state["model.channel_embed.weight"] = np.zeros((16, 192), np.float32)
  src = _write(tmp_path, state)
  _expect_failure(src, tmp_path / "ck",
                  r"no place in the model: \[.channel_embed.weight.\] .*--ignore")
  config, report = import_torch.import_safetensors(
      src, str(tmp_path / "ck"), ignore=["model.channel_embed.weight"])
  assert report["ignored"] == ["channel_embed.weight"] and config.head == "reconstruction"
  with pytest.raises(import_torch.ImportFailure, match="already exists"):
    import_torch.import_safetensors(src, str(tmp_path / "ck"), ignore=["channel_embed.weight"])


def test_other_depth_is_rejected_with_the_known_variants(tmp_path):
  state = {k: v for k, v in load_file(need(PRETRAIN_ST)).items()
           if not k.startswith(("model.blocks.6.", "model.blocks.7."))}
  _expect_failure(_write(tmp_path, state), tmp_path / "ck",
                  r"unknown architecture: depth 6, width 192.*'tiny': \(8, 192\)")


def test_other_width_is_rejected_and_imports_with_explicit_heads(tmp_path):
  from tinymyo_jax.models.tinymyo import ModelConfig

  cfg = ModelConfig(num_layers=2, embed_dim=256, num_heads=4)
  table = wm.entries(cfg.num_layers, cfg.head)
  shapes = {"patch_embedding.patch_embed.proj.weight": (256, 1, 1, 20), "mask_token": (1, 1, 256)}
  state = {}
  for e in table:
    shape = shapes.get(e.official)
    if shape is None:
      shape = {"qkv": (768, 256), "fc1": (1024, 256), "fc2": (256, 1024)}.get(
          e.official.split(".")[-2], (256, 256))
      shape = shape[:1] if e.official.endswith("bias") else shape
      if e.official.startswith("model_head"):
        shape = (20, 256) if e.official.endswith("weight") else (20,)
      if "norm" in e.official:
        shape = (256,)
    state[e.official] = np.zeros(shape, np.float32)
  src = _write(tmp_path, state)
  _expect_failure(src, tmp_path / "ck", r"depth 2, width 256.*Pass num_heads")
  config, _ = import_torch.import_safetensors(src, str(tmp_path / "ck"), num_heads=4)
  assert (config.num_layers, config.embed_dim, config.num_heads, config.mlp_ratio) == (
      2, 256, 4, 4.0)


def test_wrong_shape_and_missing_tensor_name_the_key(tmp_path):
  state = load_file(need(PRETRAIN_ST))
  state["model.blocks.3.mlp.fc1.weight"] = np.zeros((512, 192), np.float32)
  _expect_failure(_write(tmp_path, state), tmp_path / "ck",
                  r"'blocks.3.mlp.fc1.weight' has shape \[512, 192\], the model expects "
                  r"\[768, 192\]")
  state = load_file(need(PRETRAIN_ST))
  del state["model.blocks.2.norm1.bias"]
  _expect_failure(_write(tmp_path, state, "missing.safetensors"), tmp_path / "ck",
                  r"lacks 1 tensor\(s\) the model needs: \[.blocks.2.norm1.bias.\]")


def test_truncated_and_absent_files_fail_cleanly(tmp_path):
  data = need(PRETRAIN_ST).read_bytes()
  cut = tmp_path / "cut.safetensors"
  cut.write_bytes(data[:len(data) // 2])
  _expect_failure(str(cut), tmp_path / "ck", "truncated or not a safetensors file")
  _expect_failure(str(tmp_path / "nope.safetensors"), tmp_path / "ck", "does not exist")


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
  rc = import_torch.main(["--safetensors", str(tmp_path / "nope.safetensors"),
                          "--out", str(tmp_path / "ck")])
  assert rc == 1 and "does not exist" in capsys.readouterr().err
  assert not (tmp_path / "ck").exists()
