"""Test-split evaluation of a checkpoint: batched jit predictions, task metrics, report."""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from flax import nnx

from tinymyo_jax import checkpointing, input_pipeline, metrics, train
from tinymyo_jax.models.tinymyo import create_model


def class_names(config) -> list[str] | None:
  """Label names of the task's first corpus (None for synthetic or in-memory data or non-class
  targets)."""
  source = train.data_sources(config)[0]
  if source.name in ("synthetic", input_pipeline.IN_MEMORY) or config.task != "classification":
    return None
  from data_builders import registry
  features = registry.get_builder(source.name, data_dir=config.data.data_dir,
                                  config=source.config).info.features
  return list(features["label"].names) if "label" in features else None


def predict(model, batches, batch_size: int, target_key: str, group_key: str | None = None):
  """Runs the model over every batch (the short last one padded).

  Returns (outputs, targets, groups): groups is the `group_key` field (e.g. subject ids), or
  None when no key is named.
  """
  graphdef, params = nnx.split(model)
  forward = jax.jit(lambda p, x: nnx.merge(graphdef, p)(x))
  outputs, targets, groups = [], [], []
  for batch in batches:
    x = batch["emg"]
    n = x.shape[0]
    if n < batch_size:  # keep one compiled shape
      x = np.concatenate([x, np.repeat(x[-1:], batch_size - n, axis=0)])
    outputs.append(np.asarray(forward(params, x))[:n])
    targets.append(batch[target_key])
    if group_key:
      groups.append(batch[group_key])
  return (np.concatenate(outputs), np.concatenate(targets),
          np.concatenate(groups) if group_key else None)


def evaluate_checkpoint(config, ckpt_dir: str, out_dir: str) -> dict[str, Any]:
  """Evaluates a checkpoint on `config.data.test_split`; writes a confusion PNG if relevant.

  Speech tasks go to `speech_evaluate` (CER/WER or MFCC MSE, transcripts or MFCC files).
  """
  params, model_cfg, meta = checkpointing.load_params(ckpt_dir)
  if config.task in train.SPEECH_TASKS:
    from tinymyo_jax import speech_evaluate
    return speech_evaluate.evaluate_checkpoint(config, params, model_cfg, meta, out_dir)
  model = create_model(model_cfg, params=params)
  source = train.data_sources(config)
  target_key = "label" if config.task == "classification" else "angles"
  records = input_pipeline.load_source(source[0], config.data.test_split, config.data.data_dir)
  by_subject = config.task == "classification" and len(records) > 0 and "subject" in records[0]
  batches = input_pipeline.make_dataset(
      source, config.data.test_split, data_dir=config.data.data_dir,
      batch_size=config.batch_size, seed=0, train=False,
      normalization=config.data.normalization,
      keep=(target_key, "subject") if by_subject else (target_key,),
      records=[records], stats=meta.get("input_stats"))
  outputs, targets, subjects = predict(model, batches, config.batch_size, target_key,
                                       "subject" if by_subject else None)
  if config.task == "classification":
    names = class_names(config)
    result = metrics.classification_metrics(targets, outputs.argmax(-1),
                                            model_cfg.num_outputs, names)
    if by_subject:
      result["accuracy_by_subject"] = metrics.accuracy_by_group(
          targets, outputs.argmax(-1), subjects)
    png = os.path.join(out_dir, "confusion.png")
    metrics.save_confusion_png(result["confusion"], names or
                               [str(i) for i in range(model_cfg.num_outputs)], png,
                               f"{config.name}: test accuracy {result['accuracy']:.4f}")
    scalars = {"accuracy": result["accuracy"], "macro_f1": result["macro_f1"]}
    if by_subject:
      scalars["accuracy_by_subject"] = result["accuracy_by_subject"]
    return {"scalars": scalars, "details": result, "confusion_png": png,
            "num_examples": int(len(targets))}
  if config.task == "regression":
    result = metrics.regression_metrics(np.swapaxes(targets, 1, 2), outputs)
    scalars = {k: v for k, v in result.items() if isinstance(v, (int, float))}
    return {"scalars": scalars, "details": result, "num_examples": int(len(targets))}
  raise ValueError(f"test evaluation for task type {config.task!r} is not implemented")


def report_markdown(summary: dict[str, Any], runs: list[dict[str, Any]]) -> str:
  """A short human-readable report of a fine-tuning run."""
  lines = [f"# Fine-tuning report: {summary['task']}", "",
           f"- initialised from: {summary['init_from']}",
           f"- rope_mode: {summary['rope_mode']}",
           f"- parameters: {summary['param_count']:,}",
           f"- train examples: {summary['num_train_examples']} "
           f"({summary['steps_per_epoch']} steps per epoch)",
           f"- seeds: {summary['seeds']}", "", "## Test metrics (mean +/- std over seeds)", "",
           "| metric | mean | std |", "|---|---:|---:|"]
  for name, stats in summary["test"].items():
    if isinstance(stats, dict) and "mean" in stats:
      lines.append(f"| {name} | {stats['mean']:.4f} | {stats['std']:.4f} |")
  by_subject = summary["test"].get("accuracy_by_subject")
  if by_subject:
    lines += ["", "## Test accuracy per subject (mean +/- std over seeds)", "",
              "| subject | accuracy | std |", "|---:|---:|---:|"]
    lines += [f"| {k} | {v['mean']:.4f} | {v['std']:.4f} |" for k, v in by_subject.items()]
  lines += ["", "## Runs", "", "| seed | best step | best val loss | steps | wall s | test |",
            "|---:|---:|---:|---:|---:|---|"]
  for r in summary["runs"]:
    test = ", ".join(f"{k} {v:.4f}" for k, v in r["test"].items() if not isinstance(v, dict))
    lines.append(f"| {r['seed']} | {r['best_step']} | {r['best_eval_loss']:.4f} | "
                 f"{r['steps']} | {r['wall_time_sec']:.0f} | {test} |")
  outputs = [r["test"]["predictions"] for r in runs if r["test"].get("predictions")]
  if outputs:
    lines += ["", "## Test predictions (first seed)", "",
              f"`{os.path.relpath(outputs[0], summary['workdir'])}`"]
  pngs = [r["test"].get("confusion_png") for r in runs if r["test"].get("confusion_png")]
  if pngs:
    lines += ["", "## Confusion matrix (first seed)", "",
              f"![confusion]({os.path.relpath(pngs[0], summary['workdir'])})"]
  return "\n".join(lines) + "\n"
