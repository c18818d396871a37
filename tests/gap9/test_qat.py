"""Quantisation-aware fine-tuning: STE gradients; the one training loop with `config.quant.qat`."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from configs import finetune as finetune_configs
from export.gap9 import quantize as q
from export.gap9.model_io import pure_params
from tinymyo_jax import checkpointing, input_pipeline, reporting, steps, tasks, train
from tinymyo_jax.tasks import classification
from tinymyo_jax.models.tinymyo import create_model
from tinymyo_jax.quant import fake_quant


@pytest.fixture(scope="module")
def calibrated(make_config, calib_windows):
  config = make_config()
  params = pure_params(config, seed=1)
  qcfg = fake_quant.QuantConfig()
  x = calib_windows[:8, :, :200]  # 1 s crops at 200 Hz grid length: 80 tokens
  scales = fake_quant.activation_scales(fake_quant.calibrate(params, config, x, qcfg), qcfg)
  return params, config, qcfg, scales


def test_ste_params_equal_the_ptq_fake_quant_params(calibrated):
  params, config, qcfg, scales = calibrated
  want = q.fake_quant_params(params, q.build(params, config, scales, qcfg))
  got = fake_quant.ste_params(params, config, scales, qcfg)
  for name, lin in fake_quant.linear_layers(got, config.num_layers):
    ref = dict(fake_quant.linear_layers(want, config.num_layers))[name]
    np.testing.assert_allclose(lin["kernel"], ref["kernel"], rtol=1e-6, atol=1e-9, err_msg=name)
    np.testing.assert_allclose(lin["bias"], ref["bias"], rtol=1e-5, atol=1e-9, err_msg=name)
  # 127 levels per column at most: the kernels are on their int8 grid
  w = np.asarray(got["blocks"][0]["mlp"]["fc1"]["kernel"])
  steps = w / (np.abs(w).max(0) / 127)
  np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)


def test_ste_gradients_are_finite_and_reach_every_layer(calibrated, test_windows):
  params, config, qcfg, scales = calibrated
  x, y = test_windows[0][:8, :, :200], test_windows[1][:8]
  scales = {k: np.float32(v) for k, v in scales.items()}

  def loss(p):
    logits = fake_quant.qat_forward(p, config, jnp.asarray(x), scales, qcfg)
    return optax.softmax_cross_entropy_with_integer_labels(logits, jnp.asarray(y)).mean()

  grads = jax.jit(jax.grad(loss))(params)
  for path, g in jax.tree_util.tree_leaves_with_path(grads):
    g = np.asarray(g)
    assert np.all(np.isfinite(g)), jax.tree_util.keystr(path)
    if "mask_token" not in jax.tree_util.keystr(path):  # unused by the classifier
      assert np.abs(g).max() > 0, jax.tree_util.keystr(path)


def _qat_task(**overrides):
  c = finetune_configs.get_config("uci").unlock()
  c.data.sources = (("synthetic", "8x200:64:6", 1.0),)
  c.model.variant = "test"
  c.batch_size = 16
  c.total_steps, c.eval_every, c.checkpoint_every, c.log_every = 12, 6, 12, 4
  c.optimizer.warmup_steps = 2
  c.optimizer.peak_lr = 2e-3
  c.early_stopping_patience = 5
  c.progress_bar = False
  c.quant.qat = True
  c.quant.calib_batches = 2
  for k, v in overrides.items():
    node, _, leaf = k.rpartition(".")
    (c if not node else c[node])[leaf] = v
  return c


def test_qat_run_trains_and_evaluates_the_fake_quant_model(tmp_path):
  config = _qat_task()
  start = {}

  def keep_start(fresh, shardings):
    del shardings
    start.update(jax.device_get(fresh))
    return fresh

  summary = train.train_and_evaluate(config, str(tmp_path), init_params=keep_start)
  params, model_cfg, meta = checkpointing.load_params(summary["best_dir"])
  assert meta["quant"]["qcfg"]["weights"] == "per_channel"
  assert meta["quant"]["calib_windows"] == 32  # 2 batches of 16
  scales = {k: np.float32(v) for k, v in meta["quant"]["scales"].items()}
  assert scales["b0.probs"] == np.float32(1 / 255)
  losses = [r["train/loss"] for r in reporting.read_metrics(str(tmp_path)) if "train/loss" in r]
  assert len(losses) == 3 and losses[-1] < losses[0]
  # the params moved away from the initial ones
  moved = np.abs(np.asarray(params["blocks"]["0"]["mlp"]["fc1"]["kernel"])
                 - np.asarray(start["blocks"][0]["mlp"]["fc1"]["kernel"])).max()
  assert moved > 1e-4
  # the eval loss the loop used for early stopping is the fake-quant forward's on the best params
  ds = train.dataset_fn(config, input_pipeline.config_sources(config), config.batch_size,
                        meta["input_stats"])
  graphdef, state = nnx.split(create_model(model_cfg, params=params), nnx.Param)
  qat_loss, _ = classification.qat_loss_fn(config, model_cfg, None, None, meta["quant"])
  qat_eval = jax.jit(steps.make_eval_step(graphdef, qat_loss))  # as the loop compiles it
  float_eval = jax.jit(steps.make_eval_step(graphdef, tasks.get(config.task).loss_fn(config)))
  fq_loss, float_loss, n = 0.0, 0.0, 0
  for batch in ds(config.data.eval_split, seed=0, train=False):
    if batch["emg"].shape[0] != config.batch_size:
      continue
    fq_loss += float(qat_eval(nnx.to_pure_dict(state), batch, None)["loss"])
    float_loss += float(float_eval(nnx.to_pure_dict(state), batch, None)["loss"])
    n += 1
  assert n >= 1
  assert fq_loss / n == pytest.approx(summary["best_eval_loss"], rel=1e-6)
  assert float_loss / n != pytest.approx(summary["best_eval_loss"], rel=1e-5)


def test_qat_needs_a_classification_task():
  from configs.common import validate
  config = _qat_task(task="regression")
  with pytest.raises(ValueError, match="config.quant.qat=True needs task 'classification'.*"
                                       "'regression'"):
    validate(config)


def test_bad_quant_option_names_the_config_field(make_config):
  config = _qat_task(**{"quant.weights": "per_row"})
  with pytest.raises(ValueError, match=r"config.quant: QuantConfig.weights='per_row'"):
    classification.qat_loss_fn(config, make_config(), None, None)
