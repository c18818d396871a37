"""Pretraining targets: the raw-signal and the spectrum objectives, their head widths, the
predict-the-mean floor, and a spectrum-pretrained checkpoint that fine-tuning starts from."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import common, pretrain
from tinymyo_jax import checkpointing, finetune, reporting, train
from tinymyo_jax.masking import random_patch_mask
from tinymyo_jax.models.tinymyo import create_model
from tinymyo_jax.tasks import pretrain as pretrain_task
from tests.finetune_test import tiny_task


def smoke(target: str):
  c = pretrain.get_config("smoke").unlock()
  c.pretrain.target = target
  return c


def test_spectrum_is_the_log_amplitude_of_each_patch():
  t = np.arange(20)
  patches = np.stack([np.zeros(20), np.cos(2 * np.pi * 3 * t / 20), 2 * np.ones(20)])[None]
  out = np.asarray(pretrain_task.spectrum(jnp.asarray(patches, jnp.float32)))
  assert out.shape == (1, 3, 11)
  np.testing.assert_allclose(out[0, 0], 0.0, atol=1e-6)
  # A cosine of 3 cycles per patch: all its energy in bin 3 (|X| = 20 / 2 / sqrt(20)).
  np.testing.assert_allclose(out[0, 1, 3], np.log1p(np.sqrt(20) / 2), rtol=1e-5)
  assert np.all(np.delete(out[0, 1], 3) < 1e-5)
  # A constant: only the DC bin (|X| = 2 * 20 / sqrt(20)).
  np.testing.assert_allclose(out[0, 2, 0], np.log1p(2 * np.sqrt(20)), rtol=1e-5)


@pytest.mark.parametrize("target,width", [("signal", 20), ("spectrum", 11)])
def test_the_reconstruction_head_is_as_wide_as_the_target(target, width):
  cfg = pretrain_task.model_config(smoke(target))
  assert cfg.num_outputs == (0 if target == "signal" else width)
  model = create_model(cfg)
  assert model.head.decoder_pred.kernel.shape == (cfg.embed_dim, width)
  x = jnp.ones((2, 8, 200))
  loss, metrics = pretrain_task.pretrain_loss(model, {"emg": x}, jax.random.PRNGKey(1), False,
                                              target=target)
  assert np.isfinite(float(loss)) and set(metrics) >= {"floor_masked", "std_ratio"}


def test_floor_is_the_loss_of_predicting_each_number_s_batch_mean():
  class Constant:  # a "model" that predicts zeros: its masked loss is the loss of 0
    config = type("C", (), {"patch_size": 20})()

    def __call__(self, x, mask, **_):
      return jnp.zeros((x.shape[0], x.shape[1] * x.shape[2] // 20, 11))

  x = jax.random.normal(jax.random.PRNGKey(0), (4, 8, 200)) * 3.0
  _, m = pretrain_task.pretrain_loss(Constant(), {"emg": x}, jax.random.PRNGKey(2), False,
                                     target="spectrum")
  mask_key = jax.random.split(jax.random.PRNGKey(2))[0]  # the mask key the loss draws
  masked = np.asarray(random_patch_mask(mask_key, 4, 80, 0.5))
  goal = np.log1p(np.abs(np.fft.rfft(np.asarray(x).reshape(4, 80, 20), norm="ortho")))[masked]
  d = np.abs(goal - goal.mean(axis=0))
  expected = np.where(d < 1, 0.5 * d ** 2, d - 0.5).mean()
  np.testing.assert_allclose(float(m["floor_masked"]), expected, rtol=1e-4)
  # Predicting zero for positive log-amplitudes is worse than predicting their mean.
  assert float(m["loss_masked"]) > float(m["floor_masked"])


def test_unknown_target_is_refused_by_name():
  c = smoke("phase")
  with pytest.raises(ValueError, match="pretrain.target.*'phase'"):
    common.validate(c)
  with pytest.raises(ValueError, match="unknown pretraining target 'phase'"):
    pretrain_task.target_width("phase", 20)


def test_spectrum_pretraining_runs_and_fine_tuning_starts_from_its_encoder(tmp_path):
  train.train_and_evaluate(smoke("spectrum"), str(tmp_path / "pre"))
  params, cfg, _ = checkpointing.load_params(str(tmp_path / "pre" / "checkpoints"))
  assert cfg.num_outputs == 11 and params["head"]["decoder_pred"]["kernel"].shape[1] == 11
  rows = reporting.read_metrics(str(tmp_path / "pre"))
  floors = [r["train/floor_masked"] for r in rows if "train/floor_masked" in r]
  assert floors and all(f > 0 for f in floors)
  summary = finetune.run(tiny_task(init_from=str(tmp_path / "pre" / "checkpoints")),
                         str(tmp_path / "ft"))
  assert 0.0 <= summary["test"]["accuracy"]["mean"] <= 1.0
  tuned, _, _ = checkpointing.load_params(summary["runs"][0]["best_dir"])
  start = np.asarray(params["patch_embed"]["kernel"])
  assert np.abs(np.asarray(tuned["patch_embed"]["kernel"]) - start).max() < 0.05
