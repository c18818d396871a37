"""Test-split evaluation of a checkpoint: the task's evaluator, batched jit predictions, report.

`evaluate_checkpoint` loads the params and hands them to `tasks.get(config.task).evaluate`; the
window tasks' evaluators build on `window_outputs`.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import jax
import numpy as np
from flax import nnx

from tinymyo_jax import checkpointing, input_pipeline, multihost, tasks
from tinymyo_jax.models.tinymyo import create_model


# Test evaluation is host-local: with N processes each predicts a share of the test split (the
# window tasks every N-th record, `window_outputs`; the speech tasks their rows of each global
# batch) and gathers the predictions; all compute the same metrics, process 0 writes files.
WHOLE_SPLIT = (0, 1)  # one process's view of a pipeline: every record


def evaluate_checkpoint(config, ckpt_dir: str, out_dir: str) -> dict[str, Any]:
  """Evaluates the params in `ckpt_dir` on `config.data.test_split` with the task's evaluator
  (which may write files, e.g. a confusion PNG or transcripts, into `out_dir`; on processes
  other than 0 into a temporary folder that is then removed)."""
  task = tasks.get(config.task)
  if task.evaluate is None:
    raise ValueError(f"task {config.task!r} has no test evaluation")
  params, model_cfg, meta = checkpointing.load_params(ckpt_dir)
  if jax.process_index() == 0:
    return task.evaluate(config, params, model_cfg, meta, out_dir)
  with tempfile.TemporaryDirectory() as scratch:
    return task.evaluate(config, params, model_cfg, meta, scratch)


def class_names(config) -> list[str] | None:
  """Label names of the task's first corpus when its records keep a ClassLabel "label" (None
  for synthetic or in-memory data and for other targets)."""
  source = input_pipeline.config_sources(config)[0]
  if (source.name in ("synthetic", input_pipeline.IN_MEMORY)
      or "label" not in config.data.get("keep", ())):
    return None
  from data_builders import registry
  features = registry.get_builder(source.name, data_dir=config.data.data_dir,
                                  config=source.config).info.features
  label = features["label"] if "label" in features else None
  return list(label.names) if hasattr(label, "names") else None


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


class EveryNth:
  """Records start, start + step, start + 2 * step, ... of a random-access sequence."""

  def __init__(self, records, start: int, step: int):
    self.records, self.start, self.step = records, start, step

  def __len__(self) -> int:
    return len(range(self.start, len(self.records), self.step))

  def __getitem__(self, i: int):
    if not 0 <= i < len(self):
      raise IndexError(f"record {i} of {len(self)}")
    return self.records[self.start + i * self.step]


def window_outputs(config, params, model_cfg, meta, target_key: str,
                   group_key: str | None = None):
  """(outputs, targets, groups) of a TinyMyo checkpoint on the test windows of the config's
  first corpus, normalised with the checkpoint's statistics; groups (e.g. "subject") is None
  when not asked for or when the records lack that field. With N processes each predicts every
  N-th record and all receive every prediction (in process order, not the split's)."""
  model = create_model(model_cfg, params=params)
  source = input_pipeline.config_sources(config)
  records = input_pipeline.load_source(source[0], config.data.test_split, config.data.data_dir)
  if group_key and not (len(records) and group_key in records[0]):
    group_key = None
  index, count = jax.process_index(), jax.process_count()
  shared = len(records) >= count  # else every process predicts the whole (tiny) split
  batches = input_pipeline.make_dataset(
      source, config.data.test_split, data_dir=config.data.data_dir,
      batch_size=config.batch_size, seed=0, train=False,
      normalization=config.data.normalization,
      keep=(target_key, group_key) if group_key else (target_key,),
      records=[EveryNth(records, index, count) if shared else records],
      stats=meta.get("input_stats"),
      process=WHOLE_SPLIT)
  outputs, targets, groups = predict(model, batches, config.batch_size, target_key, group_key)
  if not shared:
    return outputs, targets, groups
  if groups is None:
    return (*multihost.gather_rows(outputs, targets), None)
  return multihost.gather_rows(outputs, targets, groups)


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
