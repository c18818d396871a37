"""Window classification (UCI-EMG, NinaPro DB5, EPN-612, the Myo corpora): cross-entropy on the
head's logits, accuracy and macro-F1 overall and per subject, and quantisation-aware training for
the GAP9 pipeline."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from tinymyo_jax import evaluate, metrics
from tinymyo_jax.quant import fake_quant, graph
from tinymyo_jax.tasks import core


def classification_loss(model, batch, key, train: bool, *, label_smoothing: float = 0.0,
                        frozen_encoder: bool = False):
  """Cross-entropy (optionally label-smoothed) on the logits; also accuracy."""
  logits = core.forward(model, batch["emg"], key, train, frozen_encoder)
  return _cross_entropy(logits, batch["label"], label_smoothing)


def _cross_entropy(logits, labels, label_smoothing: float):
  targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), label_smoothing)
  loss = optax.softmax_cross_entropy(logits, targets).mean()
  accuracy = (jnp.argmax(logits, -1) == labels).mean()
  return loss, {"loss": loss, "accuracy": accuracy}


def loss_fn(config):
  return functools.partial(classification_loss,
                           frozen_encoder=bool(config.finetune.freeze_backbone),
                           label_smoothing=config.finetune.label_smoothing)


# ----------------------------------------------------------------------------- QAT


def qat_classification_loss(model, batch, key, train: bool, *, scales: dict, qcfg,
                            label_smoothing: float = 0.0):
  """`classification_loss` on the GAP9 pipeline's fake-quantised forward (STE, no dropout)."""
  del key, train
  params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
  logits = fake_quant.qat_forward(params, model.config, batch["emg"], scales, qcfg)
  return _cross_entropy(logits, batch["label"], label_smoothing)


def quant_config(config):
  """`config.quant` as a `fake_quant.QuantConfig` (errors name the config field)."""
  q = config.quant
  try:
    return fake_quant.QuantConfig(weights=q.weights, scales=q.scales, activations=q.activations,
                                percentile=q.percentile)
  except ValueError as e:
    raise ValueError(f"config.quant: {e}") from None


def qat_loss_fn(config, model_cfg, params, train_batches, saved: dict | None = None):
  """(loss_fn, meta) of quantisation-aware fine-tuning (`config.quant.qat`).

  Activation scales come from `saved` (the meta of the checkpoint being resumed) or are
  calibrated once, as the GAP9 PTQ does, on `config.quant.calib_batches` batches of
  `train_batches` with `params`; they stay fixed while the weights are quantised on the fly.
  """
  graph.check_deployable(model_cfg)
  qcfg = quant_config(config)
  if saved:
    scales, windows = saved["scales"], saved["calib_windows"]
  else:
    x = np.concatenate([np.asarray(b["emg"]) for b in
                        itertools.islice(train_batches, config.quant.calib_batches)])
    ranges = fake_quant.calibrate(jax.device_get(params), model_cfg, x, qcfg)
    scales, windows = fake_quant.activation_scales(ranges, qcfg), len(x)
  loss = functools.partial(qat_classification_loss,
                           scales={k: np.float32(v) for k, v in scales.items()}, qcfg=qcfg,
                           label_smoothing=config.finetune.label_smoothing)
  return loss, {"qcfg": dataclasses.asdict(qcfg), "scales": scales, "calib_windows": windows}


# ----------------------------------------------------------------------------- test evaluation


def evaluate_test(config, params, model_cfg, meta, out_dir: str):
  """Accuracy, macro-F1, confusion matrix (and its PNG) and, where records carry subjects,
  accuracy per subject."""
  logits, labels, subjects = evaluate.window_outputs(config, params, model_cfg, meta, "label",
                                                     group_key="subject")
  predicted = logits.argmax(-1)
  names = evaluate.class_names(config)
  result = metrics.classification_metrics(labels, predicted, model_cfg.num_outputs, names)
  scalars = {"accuracy": result["accuracy"], "macro_f1": result["macro_f1"]}
  if subjects is not None:
    result["accuracy_by_subject"] = metrics.accuracy_by_group(labels, predicted, subjects)
    scalars["accuracy_by_subject"] = result["accuracy_by_subject"]
  png = os.path.join(out_dir, "confusion.png")
  metrics.save_confusion_png(result["confusion"], names or
                             [str(i) for i in range(model_cfg.num_outputs)], png,
                             f"{config.name}: test accuracy {result['accuracy']:.4f}")
  return {"scalars": scalars, "details": result, "confusion_png": png,
          "num_examples": int(len(labels))}


TASK = core.Task(name="classification", model_config=core.window_model_config, loss_fn=loss_fn,
                 dataset_fn=core.window_dataset_fn, evaluate=evaluate_test,
                 lr_scale_fn=core.finetune_lr_scale_fn, qat_loss_fn=qat_loss_fn)
