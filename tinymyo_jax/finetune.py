"""Fine-tuning driver: pretrained encoder -> train with early stopping -> test on the best params.

`run(config, workdir)` trains `config.finetune.seeds` runs (one sub-folder each), evaluates each
run's best-validation params on the test split, and writes `summary.json` and `report.md`.
"""

from __future__ import annotations

import copy
import math
import os
from typing import Any

import jax
import numpy as np

from tinymyo_jax import checkpointing, evaluate, input_pipeline, metrics, reporting, train
from tinymyo_jax.models.tinymyo import int_keys

ARCH_FIELDS = ("num_layers", "embed_dim", "num_heads", "mlp_ratio", "patch_size")
# A checkpoint whose head agrees on all of these (e.g. a fine-tuned classifier of the same task,
# continued with QAT) also gives its head; otherwise the head starts fresh.
HEAD_FIELDS = ("head", "num_channels", "num_outputs", "reduction", "target_len")
DEFAULT_PRETRAINED = os.path.join("runs", "pretrain", "checkpoints")


def resolve_init(init_from: str) -> str | None:
  """'' -> None (scratch); 'auto' -> `make pretrain`'s checkpoint if any; else the given dir."""
  if not init_from:
    return None
  if init_from == "auto":
    path = os.path.abspath(DEFAULT_PRETRAINED)
    has_ckpt = os.path.isdir(path) and any(d.isdigit() for d in os.listdir(path))
    return path if has_ckpt else None
  if not os.path.isdir(init_from):
    raise FileNotFoundError(f"pretrained checkpoint {init_from!r} does not exist")
  return os.path.abspath(init_from)


def pretrained_encoder(path: str, model_cfg):
  """Loads a checkpoint's encoder; returns (init_params callback, the checkpoint's rope_mode).

  For TinyMyo tasks every entry but the head is taken, and the head too when the checkpoint's
  agrees on `HEAD_FIELDS`; for speech tasks (a `SpeechConfig`) the Transformer `blocks` and
  final `norm`, by name (as `speech.load_encoder_params` does).
  A task model with fewer blocks than the checkpoint takes its first `num_layers` blocks (a
  truncated encoder). Raises ValueError naming every other architecture field that differs
  from the task's model.
  """
  from tinymyo_jax.models.speech import SpeechConfig
  params, ckpt_cfg, _ = checkpointing.load_params(path)
  speech_model = isinstance(model_cfg, SpeechConfig)
  if isinstance(ckpt_cfg, SpeechConfig) and not speech_model:
    raise ValueError(f"checkpoint {path} holds a speech model; it cannot initialise the "
                     f"TinyMyo model of this task")
  fields = ARCH_FIELDS
  if speech_model or isinstance(ckpt_cfg, SpeechConfig):  # no patch embedding
    fields = tuple(f for f in ARCH_FIELDS if f != "patch_size")
  diffs = {f: (getattr(ckpt_cfg, f), getattr(model_cfg, f)) for f in fields
           if getattr(ckpt_cfg, f) != getattr(model_cfg, f)}
  truncated = diffs.get("num_layers", (0, 0))[0] > model_cfg.num_layers
  if truncated:
    del diffs["num_layers"]
    params = {**params, "blocks": {k: v for k, v in params["blocks"].items()
                                   if int(k) < model_cfg.num_layers}}
    print(f"checkpoint {path}: keeping the first {model_cfg.num_layers} of its "
          f"{ckpt_cfg.num_layers} blocks")
  if diffs:
    raise ValueError(f"backbone of checkpoint {path} does not match the task's model "
                     f"(field: checkpoint vs task): {diffs}")
  same_head = not (truncated or speech_model or isinstance(ckpt_cfg, SpeechConfig)) and all(
      getattr(ckpt_cfg, f) == getattr(model_cfg, f) for f in HEAD_FIELDS)
  wanted = (("blocks", "norm") if speech_model
            else tuple(k for k in params if k != "head" or same_head))
  if same_head:
    print(f"checkpoint {path} has this task's head ({model_cfg.head}, {model_cfg.num_outputs} "
          f"outputs): continuing from it")
  missing = [k for k in wanted if k not in params]
  if missing:
    raise ValueError(f"checkpoint {path} has no {missing} entries; top-level keys are "
                     f"{sorted(params)}")
  encoder = {k: params[k] for k in wanted}

  def init_params(fresh, shardings):
    loaded = int_keys(encoder)
    out = dict(fresh)
    for key, subtree in loaded.items():
      fresh_leaves = jax.tree_util.tree_flatten_with_path(fresh[key])[0]
      new_leaves = jax.tree.leaves(subtree)
      for (p, f), n in zip(fresh_leaves, new_leaves):
        if tuple(f.shape) != tuple(n.shape):
          raise ValueError(f"pretrained parameter {key}{jax.tree_util.keystr(p)} has shape "
                           f"{tuple(n.shape)}, the task's model expects {tuple(f.shape)}")
      out[key] = jax.device_put(jax.tree.map(np.asarray, subtree), shardings[key])
    return out

  return init_params, ckpt_cfg.rope_mode


def data_meta(config) -> dict[str, Any]:
  """What inference needs to know about the inputs the model was trained on."""
  source = input_pipeline.config_sources(config)[0]
  meta = input_pipeline.source_metadata(source, config.data.data_dir)
  out = {"sample_rate_hz": meta.get("sample_rate_hz"), "num_channels": meta.get("num_channels"),
         "window": meta.get("window"), "normalization": config.data.normalization,
         "dataset": source.name, "dataset_config": source.config}
  names = evaluate.class_names(config)
  if names:
    out["class_names"] = names
  if "filter" in meta:
    out["filter"] = meta["filter"]
  return out


# What a checkpoint's data spec and the task's are compared on (`train.data_spec`).
SPEC_FIELDS = ("sources", "sample_rate_hz", "window", "num_channels", "normalization")


def checkpoint_data_spec(meta: dict[str, Any]) -> dict[str, Any] | None:
  """The data spec a checkpoint's meta records (older fine-tuned ones: from "data"), or None."""
  if "data_spec" in meta:
    return meta["data_spec"]
  data = meta.get("data")
  if data and "sample_rate_hz" in data:
    return {"sources": [f"{data.get('dataset')}:{data.get('dataset_config')}"],
            **{k: data.get(k) for k in SPEC_FIELDS if k != "sources"}}
  return None


def data_spec_diffs(checkpoint: dict[str, Any], task: dict[str, Any]) -> dict[str, dict]:
  """{field: {"checkpoint": value, "task": value}} for each `SPEC_FIELDS` entry that differs."""
  return {k: {"checkpoint": checkpoint.get(k), "task": task.get(k)} for k in SPEC_FIELDS
          if checkpoint.get(k) != task.get(k)}


def diffs_line(diffs: dict[str, dict]) -> str:
  """'sample_rate_hz: checkpoint 1000.0, task 200.0; ...'."""
  return "; ".join(f"{k}: checkpoint {v['checkpoint']!r}, task {v['task']!r}"
                   for k, v in diffs.items())


def check_init_data(config, init_path: str, task_spec: dict[str, Any]):
  """Compares the data a checkpoint was trained on with the task's; prints what differs.

  Returns (init_path or None, diffs or None where unknown, note or None). `init_from=auto`
  skips a checkpoint of another sample rate (the task then starts from scratch).
  """
  spec = checkpoint_data_spec(checkpointing.load_meta(init_path))
  if spec is None:
    note = (f"checkpoint {init_path} records no data spec (written before data specs were "
            f"recorded): its sample rate, window, channels and normalization cannot be checked")
    print(note)
    return init_path, None, note
  diffs = data_spec_diffs(spec, task_spec)
  rate, task_rate = spec.get("sample_rate_hz"), task_spec.get("sample_rate_hz")
  if config.init_from == "auto" and rate is not None and rate != task_rate:
    note = (f"init_from=auto: not using {init_path}: it was pretrained on data at {rate} Hz, "
            f"the task's data is at {task_rate} Hz; training from scratch (pass "
            f"--config.init_from={init_path} to use it anyway)")
    print(note)
    return None, None, note
  if diffs:
    print(f"the data of checkpoint {init_path} differs from the task's: {diffs_line(diffs)}")
  return init_path, diffs, None


def init_report_lines(summary: dict[str, Any]) -> list[str]:
  """report.md lines on how the initial checkpoint's data compares with the task's."""
  lines = []
  if summary.get("init_note"):
    lines.append(f"- note: {summary['init_note']}")
  diffs = summary.get("init_data_diffs")
  if diffs:
    lines.append(f"- data differs from the checkpoint's: {diffs_line(diffs)}")
  elif diffs == {}:
    lines.append("- data: the checkpoint's sources, sample rate, window, channels and "
                 "normalization")
  return lines


def derive_schedule(config, num_train: int):
  """Epoch-based durations -> steps (fields left at 0 in the task config)."""
  f = config.finetune
  steps_per_epoch = max(1, math.ceil(num_train / config.batch_size))
  with config.unlocked():
    if not config.total_steps:
      config.total_steps = f.num_epochs * steps_per_epoch
    if not config.optimizer.warmup_steps:
      config.optimizer.warmup_steps = f.warmup_epochs * steps_per_epoch
    if not config.eval_every:
      config.eval_every = steps_per_epoch
    if not config.checkpoint_every:
      config.checkpoint_every = steps_per_epoch
  return steps_per_epoch


def scores_line(test: dict[str, Any]) -> str:
  """'accuracy 0.7500 +/- 0.0100, ...' for the top-level metrics of a summary's "test" entry."""
  return ", ".join(f"{k} {v['mean']:.4f} +/- {v['std']:.4f}" for k, v in test.items()
                   if isinstance(v, dict) and "mean" in v)


def run(config, workdir: str) -> dict[str, Any]:
  """Fine-tunes and tests; returns the summary written to `workdir/summary.json`."""
  config = copy.deepcopy(config)
  from configs.common import validate
  validate(config)  # fields left at 0 are derived below
  os.makedirs(workdir, exist_ok=True)
  sources = input_pipeline.config_sources(config)
  # Fail before any step: missing dataset, channel mismatch, bad checkpoint.
  train_records = input_pipeline.load_source(sources[0], config.data.train_split,
                                              config.data.data_dir)
  meta = data_meta(config)
  if meta["num_channels"] and meta["num_channels"] > config.model.num_channels:
    raise ValueError(f"dataset {sources[0].name} has {meta['num_channels']} channels, the task's "
                     f"model fuses {config.model.num_channels} (config.model.num_channels)")
  init_path = resolve_init(config.init_from)
  task_spec = train.data_spec(config)
  init_params, data_diffs, init_note = None, None, None
  if init_path:
    init_path, data_diffs, init_note = check_init_data(config, init_path, task_spec)
  if init_path:
    init_params, rope_mode = pretrained_encoder(init_path, train.model_config_from(config))
    if rope_mode != config.model.rope_mode:
      print(f"using the checkpoint's rope_mode {rope_mode!r} (config had "
            f"{config.model.rope_mode!r})")
      with config.unlocked():
        config.model.rope_mode = rope_mode
  print(f"fine-tuning {config.name} from "
        f"{'pretrained checkpoint ' + init_path if init_path else 'scratch (random init)'}")
  num_train = len(train_records)
  steps_per_epoch = derive_schedule(config, num_train)
  validate(config, resolved=True)

  runs = []
  for seed_index in range(config.finetune.seeds):
    run_config = copy.deepcopy(config)
    with run_config.unlocked():
      run_config.seed = config.seed + seed_index
    run_dir = os.path.join(workdir, f"seed_{seed_index}")
    summary = train.train_and_evaluate(run_config, run_dir, init_params=init_params,
                                       extra_meta={"data": meta, "task_name": config.name})
    test = evaluate.evaluate_checkpoint(run_config, summary["best_dir"], run_dir)
    runs.append({"seed": run_config.seed, "train": summary, "test": test})

  summary = {
      "task": config.name, "task_type": config.task, "init_from": init_path or "scratch",
      "init_data_diffs": data_diffs, "init_note": init_note, "data_spec": task_spec,
      "rope_mode": config.model.rope_mode, "num_train_examples": num_train,
      "steps_per_epoch": steps_per_epoch, "seeds": [r["seed"] for r in runs],
      "test": metrics.mean_std_over_seeds([r["test"]["scalars"] for r in runs]),
      "runs": [{"seed": r["seed"], "best_step": r["train"]["best_step"],
                "best_eval_loss": r["train"]["best_eval_loss"], "steps": r["train"]["steps"],
                "test": r["test"]["scalars"], "best_dir": r["train"]["best_dir"],
                "wall_time_sec": r["train"]["wall_time_sec"],
                "examples_per_sec": r["train"]["examples_per_sec"]} for r in runs],
      "param_count": runs[0]["train"]["param_count"], "workdir": os.path.abspath(workdir),
  }
  if jax.process_index() > 0:
    return summary  # every process holds the same summary; process 0 writes it
  reporting.write_json_atomic(os.path.join(workdir, "summary.json"), summary)
  lines = evaluate.report_markdown(summary, runs).split("\n")
  at = next(i for i, line in enumerate(lines) if line.startswith("- initialised from:")) + 1
  lines[at:at] = init_report_lines(summary)
  with open(os.path.join(workdir, "report.md"), "w", encoding="utf-8") as f:
    f.write("\n".join(lines))
  return summary
