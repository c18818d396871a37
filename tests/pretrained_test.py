"""`tinymyo_jax.from_pretrained`: official, braindecode and own layouts; clear errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

safetensors_np = pytest.importorskip("safetensors.numpy")

import tinymyo_jax  # noqa: E402
from tests.conftest import FIXTURES, need_shared  # noqa: E402
from tinymyo_jax import pretrained  # noqa: E402
from tinymyo_jax.checkpointing import save_params  # noqa: E402
from tinymyo_jax.models.tinymyo import create_model, decode_variant  # noqa: E402
from tinymyo_jax.models import weight_layouts as wl  # noqa: E402

TOL = 1e-5
PRETRAIN_ST = FIXTURES / "tinymyo_pretrain_seed0.safetensors"
CLASSIFIER_ST = FIXTURES / "tinymyo_classifier_seed0.safetensors"


def _max_abs(a, b) -> float:
  return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def _to_braindecode(state: dict) -> dict:
  """The documented renames, written out here independently of the library."""
  out = {}
  for key, value in state.items():
    key = key.removeprefix("model.")
    if key == "mask_token" or key.startswith(("model_head.decoder_pred", "model_head.regressor")):
      continue
    if key == "patch_embedding.patch_embed.proj.weight":
      out["patch_embed.weight"] = value.reshape(value.shape[0], value.shape[3])
    elif key == "patch_embedding.patch_embed.proj.bias":
      out["patch_embed.bias"] = value
    elif key.startswith("model_head.classifier."):
      out["final_layer." + key.rsplit(".", 1)[1]] = value
    else:
      out[key] = value
  return out


def _pure(model):
  from flax import nnx
  return wl.flatten_paths(nnx.to_pure_dict(nnx.state(model, nnx.Param)))


# ----------------------------------------------------------------------------- official files


def test_official_classifier_matches_the_reference_and_the_export_converter():
  from export import import_torch

  path = need_shared(CLASSIFIER_ST)
  io = np.load(need_shared(FIXTURES / "classifier_io.npz"))
  loaded = pretrained.load(path, n_chans=8, n_outputs=6, n_times=1000)
  assert (loaded.config.head, loaded.config.num_channels, loaded.config.num_outputs,
          loaded.config.rope_mode, loaded.report["layout"]) == (
              "classification", 8, 6, "released", "official")
  assert _max_abs(loaded.model(io["x"]), io["logits"]) < TOL
  params, config, _ = import_torch.convert_state_dict(safetensors_np.load_file(str(path)))
  ref = create_model(config, params=params)
  assert config == loaded.config
  got, want = _pure(loaded.model), _pure(ref)
  assert got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) for k in want)


def test_official_pretraining_file_alone_and_with_a_fresh_head():
  path = need_shared(PRETRAIN_ST)
  io = np.load(need_shared(FIXTURES / "pretrain_io.npz"))
  model = tinymyo_jax.from_pretrained(path)
  assert model.config.head == "reconstruction"
  assert _max_abs(model(io["x"]), io["out_nomask"]) < TOL
  clf = tinymyo_jax.from_pretrained(path, n_chans=16, n_outputs=4, n_times=1000)
  assert (clf.config.head, clf.config.num_channels, clf.config.num_outputs) == (
      "classification", 16, 4)
  assert _max_abs(clf.encode(io["x"]), io["latent_nomask"]) < TOL
  assert clf(io["x"]).shape == (2, 4)


# ----------------------------------------------------------------------------- braindecode layout


def test_braindecode_classifier_gives_the_official_logits(tmp_path):
  state = safetensors_np.load_file(str(need_shared(CLASSIFIER_ST)))
  io = np.load(need_shared(FIXTURES / "classifier_io.npz"))
  path = tmp_path / "tinymyo-uci-emg.safetensors"
  safetensors_np.save_file(_to_braindecode(state), str(path))
  loaded = pretrained.load(path, n_chans=8, n_outputs=6, n_times=1000)
  assert loaded.report["layout"] == "braindecode" and loaded.report["filled"] == ["mask_token"]
  assert _max_abs(loaded.model(io["x"]), io["logits"]) < TOL
  assert np.array_equal(wl.official_to_braindecode(state)["patch_embed.weight"],
                        _to_braindecode(state)["patch_embed.weight"])


def test_braindecode_encoder_needs_n_outputs_and_then_builds_a_head(tmp_path):
  state = safetensors_np.load_file(str(need_shared(PRETRAIN_ST)))
  io = np.load(need_shared(FIXTURES / "pretrain_io.npz"))
  path = tmp_path / "tinymyo-pretrained.safetensors"
  safetensors_np.save_file(_to_braindecode(state), str(path))
  with pytest.raises(pretrained.PretrainedError, match="no task head; pass n_outputs="):
    tinymyo_jax.from_pretrained(path, n_chans=16)
  with pytest.raises(pretrained.PretrainedError, match="needs the channel count; pass n_chans="):
    tinymyo_jax.from_pretrained(path, n_outputs=4)
  model = tinymyo_jax.from_pretrained(path, n_chans=16, n_outputs=4, n_times=1000)
  assert _max_abs(model.encode(io["x"]), io["latent_nomask"]) < TOL


# ----------------------------------------------------------------------------- own exports (tiny)


def _tiny(**kw):
  cfg = decode_variant("test", rope_mode="time", head="classification", num_channels=4,
                       num_outputs=3, **kw)
  return create_model(cfg, seed=1)


def _state(model):
  from export.to_torch import params_to_official
  from flax import nnx

  return params_to_official(nnx.to_pure_dict(nnx.state(model, nnx.Param)), model.config)


def test_own_checkpoint_and_export_keep_the_full_config(tmp_path):
  from export.to_torch import write_safetensors
  from flax import nnx

  model = _tiny(num_heads=4)  # heads differ from the 'test' variant: only the config says so
  x = np.random.default_rng(0).standard_normal((2, 4, 60)).astype(np.float32)
  save_params(str(tmp_path / "ck"), nnx.to_pure_dict(nnx.state(model, nnx.Param)), model.config)
  st = write_safetensors(_state(model), str(tmp_path / "m.safetensors"), model.config)
  for path, layout in ((tmp_path / "ck", "tinymyo-jax checkpoint"), (st, "tinymyo-jax export")):
    loaded = pretrained.load(path, n_chans=4)
    assert loaded.report["layout"] == layout and loaded.config == model.config
    np.testing.assert_array_equal(loaded.model(x), model(x))


# ----------------------------------------------------------------------------- bad input


def _released_like(tmp_path, model) -> str:
  """A tiny model written as a released file: `model.` keys, no config metadata."""
  path = tmp_path / "released.safetensors"
  safetensors_np.save_file({"model." + k: v for k, v in _state(model).items()}, str(path))
  return str(path)


def test_ambiguous_mean_head_asks_for_reduction(tmp_path):
  model = _tiny(reduction="mean")
  path = _released_like(tmp_path, model)
  with pytest.raises(pretrained.PretrainedError, match=r"pass reduction='mean' or 'concat'"):
    tinymyo_jax.from_pretrained(path)
  x = np.random.default_rng(0).standard_normal((2, 4, 40)).astype(np.float32)
  # A released-like file carries no config: rope_mode 'released' unless told otherwise.
  loaded = tinymyo_jax.from_pretrained(path, reduction="mean", n_chans=4, rope_mode="time")
  assert loaded.config.reduction == "mean"
  np.testing.assert_allclose(loaded(x), model(x), atol=TOL)
  assert tinymyo_jax.from_pretrained(path, n_chans=4).config.reduction == "mean"


@pytest.mark.parametrize("kw, match", [
    (dict(n_chans=5), r"n_chans=5 does not match the tensors: the classification head is "
                      r"built for 4 channels"),
    (dict(n_outputs=7), r"n_outputs=7 does not match the tensors: .* has 3 outputs"),
    (dict(n_times=1001), r"n_times=1001 is not a multiple of the patch size 20"),
    (dict(reduction="mean"), r"reduction='mean' needs a classifier over 48 features, the "
                             r"tensors have 192"),
])
def test_arguments_that_contradict_the_tensors(tmp_path, kw, match):
  path = _released_like(tmp_path, _tiny())
  with pytest.raises(pretrained.PretrainedError, match=match):
    tinymyo_jax.from_pretrained(path, **kw)


def test_unknown_layout_lists_the_known_ones(tmp_path):
  path = tmp_path / "other.safetensors"
  safetensors_np.save_file({"encoder.weight": np.zeros((4, 4), np.float32)}, str(path))
  with pytest.raises(pretrained.PretrainedError,
                     match=r"no known TinyMyo layout .*known layouts: official: .*braindecode: "):
    tinymyo_jax.from_pretrained(path)
  with pytest.raises(pretrained.PretrainedError, match="does not exist"):
    tinymyo_jax.from_pretrained(tmp_path / "nope.safetensors")


def test_unknown_width_asks_for_num_heads(tmp_path):
  model = create_model(dataclasses.replace(decode_variant("test"), embed_dim=40, num_heads=4))
  path = _released_like(tmp_path, model)
  with pytest.raises(pretrained.PretrainedError, match="Pass num_heads"):
    tinymyo_jax.from_pretrained(path)
  assert tinymyo_jax.from_pretrained(path, num_heads=4).config.num_heads == 4
