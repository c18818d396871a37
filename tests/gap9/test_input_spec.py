"""GAP9 tools normalise windows as the checkpoint was trained (meta), else per-window z-score."""

import numpy as np
import pytest

from export.gap9 import model_io
from export.gap9.windows import InputSpec, load_windows, zscore_windows
from tinymyo_jax.checkpointing import save_params

STATS = {"mean": [0.5 * c for c in range(8)], "std": [1.0 + c for c in range(8)]}
META = {"normalization": "standardize", "input_stats": [STATS],
        "data": {"dataset": "uci_emg", "dataset_config": "hz200"}}


def _windows(n=3):
  return np.random.default_rng(0).normal(2.0, 3.0, size=(n, 8, 200)).astype(np.float32)


def test_meta_without_normalization_keeps_per_window_zscore():
  spec = InputSpec.from_meta({"model": {}}, 8)
  assert spec == InputSpec()
  x = _windows()
  np.testing.assert_array_equal(spec.apply(x), zscore_windows(x))


def test_standardize_uses_training_split_channel_statistics():
  spec = InputSpec.from_meta(META, 8)
  assert (spec.normalization, spec.builder_config) == ("standardize", "hz200")
  x = _windows()
  mean = np.asarray(STATS["mean"], np.float32)[None, :, None]
  std = np.asarray(STATS["std"], np.float32)[None, :, None]
  np.testing.assert_allclose(spec.apply(x), (x - mean) / std, rtol=1e-6, atol=1e-6)
  # channel levels survive (a per-window z-score would erase them)
  assert not np.allclose(spec.apply(x).mean(-1), 0.0, atol=0.1)


def test_checkpoint_meta_travels_to_the_input_spec(tmp_path, make_config):
  config = make_config()
  params = model_io.pure_params(config, seed=0)
  save_params(str(tmp_path / "ckpt"), params, config, extra_meta=META)
  _, loaded_config, spec = model_io.load_checkpoint(tmp_path / "ckpt")
  assert loaded_config == config
  assert spec == InputSpec("standardize", STATS, 8, "hz200")
  save_params(str(tmp_path / "old"), params, config)
  assert model_io.load_checkpoint(tmp_path / "old")[2] == InputSpec()


def test_standardized_checkpoint_needs_the_built_dataset():
  with pytest.raises(ValueError, match=r"training-split statistics.*'hz200'.*--data_dir"):
    load_windows("test", spec=InputSpec.from_meta(META, 8))
