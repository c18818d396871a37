"""The logistic-regression probe script: its features are the head's input, its folded head
computes the regression's logits, and a run on a built corpus writes a usable head checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
from flax import nnx

from data_builders.uci_emg import uci_emg_dataset_builder as uci
from experiments import layer_probe
from experiments.classical_baselines import task_records
from tinymyo_jax import checkpointing, input_pipeline
from tinymyo_jax.models.heads import tokens_to_grid
from tinymyo_jax.models.tinymyo import create_model, decode_variant
from tests.conftest import REPO

DATA_META = {"sample_rate_hz": 200.0, "num_channels": 8, "window": 200, "normalization": "zscore",
             "class_names": list(uci.CLASS_NAMES)}


def _model():
  cfg = decode_variant("test", head="classification", num_channels=8,
                       num_outputs=len(uci.CLASS_NAMES))
  return cfg, create_model(cfg, seed=3)


def test_features_after_the_last_block_are_what_the_head_pools():
  cfg, model = _model()
  x = np.random.default_rng(0).normal(size=(4, 8, 200)).astype(np.float32)
  feats = layer_probe.layer_features_fn(model)(x)
  assert feats.shape == (cfg.num_layers + 1, 4, 8 * cfg.embed_dim)
  pooled = tokens_to_grid(model.encode(x), 8).mean(axis=1)
  np.testing.assert_allclose(feats[-1], pooled, rtol=1e-5, atol=1e-5)
  assert not np.allclose(feats[0], feats[-1])  # the blocks change the features
  last = layer_probe.layer_features_fn(model, last_only=True)(x)
  assert last.shape == (1, 4, 8 * cfg.embed_dim)
  np.testing.assert_allclose(last[0], feats[-1], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("classes", [(0, 2, 3), (1, 4)])
def test_folded_head_gives_the_regressions_logits_on_raw_features(classes):
  pytest.importorskip("sklearn")
  from sklearn.linear_model import LogisticRegression
  from sklearn.pipeline import make_pipeline
  from sklearn.preprocessing import StandardScaler
  rng = np.random.default_rng(1)
  x = rng.normal(loc=5.0, scale=3.0, size=(60, 7))
  y = np.asarray(classes)[np.argmax(x[:, :len(classes)], axis=1)]
  model = make_pipeline(StandardScaler(), LogisticRegression(C=0.5)).fit(x, y)
  head = layer_probe.folded_head(model, num_classes=5)
  logits = x @ head["kernel"] + head["bias"]
  np.testing.assert_allclose(_softmax(logits)[:, list(classes)], model.predict_proba(x),
                             atol=1e-5)
  assert np.all(logits.argmax(1) == model.predict(x))  # absent classes never win


def _softmax(z):
  e = np.exp(z - z.max(axis=1, keepdims=True))
  return e / e.sum(axis=1, keepdims=True)


def test_run_fits_each_layer_writes_the_head_and_never_refits(tmp_path, capsys):
  pytest.importorskip("sklearn")
  from data_builders import build
  data_dir = tmp_path / "tfds"
  build.build("uci_emg", manual_dir=REPO / "data_builders" / "uci_emg" / "dummy_data",
              data_dir=data_dir, config="hz200")
  cfg, model = _model()
  ckpt = tmp_path / "ckpt"
  checkpointing.save_params(str(ckpt), nnx.to_pure_dict(nnx.state(model, nnx.Param)), cfg,
                            extra_meta={"task": "uci_200hz", "data": DATA_META})
  workdir = tmp_path / "lr"
  args = ["--ckpt", str(ckpt), "--task", "uci_200hz", "--data_dir", str(data_dir),
          "--workdir", str(workdir)]
  assert layer_probe.main(args) == 0
  summary = json.loads((workdir / "summary.json").read_text())
  names = [f"layer {k}" for k in range(cfg.num_layers + 1)] + ["mean of last 2"]
  assert sorted(summary["rows"]) == sorted(names)  # "mean of last 4" needs 4 blocks
  for row in summary["rows"].values():
    assert row["C"] in layer_probe.STRENGTHS
    assert list(row["test"]["accuracy_by_subject"]) == ["21"]  # the dummy copy's test subject
  best = max(row["validation_accuracy"] for row in summary["rows"].values())
  assert summary["rows"][summary["chosen_on_validation"]]["validation_accuracy"] == best
  assert summary["test"] == summary["rows"][f"layer {cfg.num_layers}"]["test"]
  # The head checkpoint is the encoder with the last layer's probe: it scores what the probe did.
  params, head_cfg, meta = checkpointing.load_params(str(workdir / "head"))
  assert head_cfg == cfg and meta["data"] == DATA_META and meta["probe"]["C"] == summary["C"]
  test = task_records("uci_200hz", str(data_dir))["test"]
  prepare = input_pipeline.PrepareWindow("zscore", 8, ())
  x = np.stack([prepare.map(test[i])["emg"] for i in range(len(test))])
  y = np.asarray([int(test[i]["label"]) for i in range(len(test))])
  pred = np.asarray(create_model(head_cfg, params=params)(x)).argmax(1)
  assert (pred == y).mean() == pytest.approx(summary["test"]["accuracy"])
  # A finished workdir is not recomputed.
  (workdir / "summary.json").write_text(json.dumps({**summary, "task": "kept"}))
  assert layer_probe.main(args + ["--layers", "last"]) == 0
  assert json.loads((workdir / "summary.json").read_text())["task"] == "kept"
  assert "done already" in capsys.readouterr().out
