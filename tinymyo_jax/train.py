"""The one training loop: pretraining and every fine-tuning task run through `train_and_evaluate`.

Sections: model and shardings -> optimizer and state -> data -> resume -> compiled steps -> loop.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import tqdm
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from tinymyo_jax import (checkpointing, input_pipeline, multihost, optim, reporting, sharding,
                         steps, tasks)
from tinymyo_jax.models import factory

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- config -> parts


def model_config_from(config: ml_collections.ConfigDict):
  """The model config the run's task builds from `config.model`."""
  return tasks.get(config.task).model_config(config)


def data_spec(config) -> dict[str, Any]:
  """What the run's inputs are: sources, sample rate, window, channels and normalization.

  Stored with every checkpoint; fine-tuning compares its task's with the pretrained checkpoint's.
  A value is a list where the sources disagree, None where the metadata does not say.
  """
  sources = input_pipeline.config_sources(config)
  metas = [input_pipeline.source_metadata(s, config.data.data_dir) for s in sources]
  channels = [s.channel_group or m.get("num_channels") for s, m in zip(sources, metas)]

  def one(values):
    distinct = sorted(set(values), key=str)
    return distinct[0] if len(distinct) == 1 else distinct

  return {"sources": [f"{s.name}:{s.config}" for s in sources],
          "sample_rate_hz": one(m.get("sample_rate_hz") for m in metas),
          "window": one(m.get("window") for m in metas), "num_channels": one(channels),
          "normalization": config.data.normalization}


# Run-config fields a resumed run must share with its checkpoint: schedule, batch, data, task.
# `config.allow_config_change=True` continues under new values instead.
RESUME_FIELDS = ("task", "name", "total_steps", "grad_accum_steps", "batch_size",
                 "optimizer.warmup_steps", "optimizer.peak_lr", "optimizer.init_lr",
                 "optimizer.end_lr", "data.sources", "data.train_split", "data.eval_split",
                 "data.test_split", "data.normalization")


def run_fields(config) -> dict[str, Any]:
  """`RESUME_FIELDS` of `config` as a checkpoint's meta stores them (JSON: tuples -> lists)."""
  out = {}
  for field in RESUME_FIELDS:
    node = config
    for part in field.split("."):
      node = node.get(part) if node is not None else None
    out[field] = node
  return json.loads(json.dumps(out))


def config_changes(saved: dict[str, Any], config) -> dict[str, tuple[Any, Any]]:
  """{field: (checkpoint's value, config's value)} for every `RESUME_FIELDS` entry that differs."""
  return {k: (saved.get(k), v) for k, v in run_fields(config).items() if saved.get(k) != v}


def make_optimizer(config):
  o = config.optimizer
  updates = max(1, config.total_steps // config.grad_accum_steps)
  schedule = optim.warmup_cosine(o.peak_lr, updates, o.warmup_steps, o.end_lr, o.init_lr)
  tx = optim.adamw(schedule, b1=o.b1, b2=o.b2, weight_decay=o.weight_decay,
                   grad_clip_norm=o.grad_clip_norm, grad_accum_steps=config.grad_accum_steps,
                   lr_scale_fn=tasks.get(config.task).lr_scale_fn(config))
  return tx, schedule


def input_stats(config, sources) -> list[dict] | None:
  """Per-source channel statistics of the training split, when the normalization needs them."""
  if config.data.normalization != "standardize":
    return None
  limit = tasks.get(config.task).stats_records
  return [input_pipeline.channel_stats(
      input_pipeline.load_source(s, s.train_split(config.data.train_split), config.data.data_dir),
      max_records=limit) for s in sources]


def dataset_fn(config, sources, batch_size: int, stats):
  """`make_ds(split, *, seed, train)` of the run's task (windows, or whole utterances)."""
  return tasks.get(config.task).dataset_fn(config, sources, batch_size, stats)


def eval_sets(config, sources, stats, per_process_batch: int) -> dict[str, Any]:
  """{name: eval dataset} built once per run: "" = the run's own eval split over its sources,
  "<corpus>:<config>" per source when several are evaluated (per-corpus losses), and
  "<corpus>:<config>:<split>" per `config.data.eval_sources` entry (data the run never trains
  on)."""
  evaluated = [i for i, s in enumerate(sources) if not s.split]
  make_ds = dataset_fn(config, sources, per_process_batch, stats)
  out = {"": make_ds(config.data.eval_split, seed=0, train=False)}
  if len(evaluated) > 1:
    for i in evaluated:
      one = dataset_fn(config, [sources[i]], per_process_batch, stats and [stats[i]])
      out[f"{sources[i].name}:{sources[i].config}"] = one(config.data.eval_split, seed=0,
                                                          train=False)
  for name, builder_config, split in config.data.get("eval_sources", ()):
    extra = [input_pipeline.Source(name, builder_config)]
    one = dataset_fn(config, extra, per_process_batch, input_stats(config, extra))
    out[f"{name}:{builder_config}:{split}"] = one(split, seed=0, train=False)
  return out


def check_batch(batch: dict[str, np.ndarray], step: int) -> None:
  """Refuses a batch with NaN/Inf before it can reach the params (or a checkpoint)."""
  x = batch["emg"]
  bad = int(x.size - np.isfinite(x).sum())
  if bad:
    raise ValueError(f"batch for step {step} contains {bad} NaN/Inf values in 'emg' "
                     f"(shape {x.shape}); fix or filter the input data")


# ----------------------------------------------------------------------------- state


def init_state(model_cfg, mesh, tx, seed: int, init_params=None):
  """Params born sharded from their logical axes, optimizer state, step 0; plus graphdef.

  A model with BatchNorm (the speech model) also gets `state["batch_stats"]`; TinyMyo has none,
  and its state has no such key.
  """
  with nnx.use_eager_sharding(False):
    abstract_model = nnx.eval_shape(lambda: factory.build(model_cfg, rngs=nnx.Rngs(0)))
  graphdef, abstract_params, abstract_stats = nnx.split(abstract_model, nnx.Param, nnx.BatchStat)
  param_shardings, stats_shardings = (
      sharding.named_shardings(mesh, nnx.to_pure_dict(sharding.logical_partition_specs(s)))
      for s in (abstract_params, abstract_stats))

  def fresh_state(key):
    with nnx.use_eager_sharding(False):
      model = factory.build(model_cfg, rngs=nnx.Rngs(key))
    return (nnx.to_pure_dict(nnx.state(model, nnx.Param)),
            nnx.to_pure_dict(nnx.state(model, nnx.BatchStat)))

  params, stats = jax.jit(fresh_state, out_shardings=(param_shardings, stats_shardings))(
      jax.random.key(seed))
  if init_params is not None:
    params = init_params(params, param_shardings)
  replicated = NamedSharding(mesh, P())
  # Param-shaped optimizer state (Adam moments) takes the params' shardings; the rest
  # (step counts) is replicated over the mesh.
  opt_shardings = optax.tree_utils.tree_map_params(
      tx, lambda _, sh: sh, jax.eval_shape(tx.init, params), param_shardings,
      transform_non_params=lambda _: replicated)
  opt_state = jax.jit(tx.init, out_shardings=opt_shardings)(params)
  state = {"params": params, "opt_state": opt_state,
           "step": jax.device_put(jnp.zeros((), jnp.int32), replicated)}
  if stats:
    state["batch_stats"] = stats
  return graphdef, state


def saved_state(state):
  """What checkpoints store as `params`: the params plus any batch statistics, one tree."""
  return factory.merge_stats(state["params"], state.get("batch_stats"))


def abstract_of(tree):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                      tree)


# ----------------------------------------------------------------------------- loop


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       init_params=None, extra_meta: dict[str, Any] | None = None
                       ) -> dict[str, Any]:
  """Trains per `config`, resuming from `workdir/checkpoints` if present; returns the summary.

  `init_params(params, shardings) -> params` may replace freshly initialised params (e.g. with a
  pretrained encoder); it is ignored when resuming from the run's own checkpoint.
  With `config.early_stopping_patience > 0`, the params with the lowest eval loss are kept in
  `workdir/best` and training stops after that many evals without improvement.
  `extra_meta` is stored with every checkpoint (e.g. the data's sampling rate for inference).
  Each checkpoint also records the run config (`RESUME_FIELDS`), the data spec and the
  early-stopping state: a resume continues the counters, a run that already finished or stopped
  early returns its summary without training, and a resume under another schedule, batch size,
  data or task is refused unless `config.allow_config_change`.
  """
  from configs.common import validate  # configs are a package of the project
  validate(config, resolved=True)
  start_time = time.time()
  os.makedirs(workdir, exist_ok=True)
  model_cfg = model_config_from(config)
  mesh = sharding.make_mesh(config.mesh.data, config.mesh.fsdp)
  num_devices = mesh.devices.size
  if config.batch_size % num_devices:
    raise ValueError(f"batch_size {config.batch_size} is not divisible by the {num_devices} "
                     f"devices of the mesh")
  per_process_batch = config.batch_size // jax.process_count()
  sharding.check_process_rows(mesh, config.batch_size)  # the rows make_dataset reads

  # --- model, optimizer, state
  tx, schedule = make_optimizer(config)
  graphdef, state = init_state(model_cfg, mesh, tx, config.seed, init_params)
  num_params = sum(x.size for x in jax.tree.leaves(state["params"]))
  state_shardings = jax.tree.map(lambda x: x.sharding, state)
  replicated = NamedSharding(mesh, P())

  # --- data
  sources = input_pipeline.config_sources(config)
  stats = input_stats(config, sources)
  make_ds = dataset_fn(config, sources, per_process_batch, stats)
  train_iter = iter(make_ds(config.data.train_split, seed=config.seed, train=True))

  # --- resume
  ckpt = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"),
                                    max_to_keep=config.max_to_keep)
  restored = ckpt.restore_latest(abstract_of(saved_state(state)),
                                 abstract_of(state["opt_state"]), train_iter)
  patience = config.get("early_stopping_patience", 0)
  best_dir = os.path.join(workdir, "best")
  best_loss, best_step, evals_since_best = float("inf"), None, 0
  last_train, last_eval, last_eval_by_set = {}, {}, {}
  if restored is not None:
    step0, saved, opt_state, saved_meta = restored
    try:
      saved_model = checkpointing.model_config_from_json(saved_meta["model"])
      if saved_model != model_cfg:
        raise checkpointing.CheckpointError(
            f"checkpoint in {ckpt.directory} was written for model {saved_model}, "
            f"the config asks for {model_cfg}")
      check_resume_config(saved_meta, config, ckpt.directory)
    except checkpointing.CheckpointError:
      ckpt.close()
      raise
    progress = saved_meta.get("progress")
    if progress:
      best_step, evals_since_best = progress["best_step"], progress["evals_since_best"]
      if progress["best_eval_loss"] is not None:
        best_loss = progress["best_eval_loss"]
      last_train, last_eval, last_eval_by_set = (
          progress["last_train"], progress["last_eval"], progress["last_eval_by_set"])
    elif patience:
      tqdm.tqdm.write(f"checkpoint step {step0} of {ckpt.directory} records no early-stopping "
                      f"state; counting evaluations without improvement from here")
    params, batch_stats = factory.split_stats(saved, state.get("batch_stats"))
    state = {"params": params, "opt_state": opt_state,
             "step": jax.device_put(jnp.asarray(step0, jnp.int32), replicated)}
    if batch_stats:
      state["batch_stats"] = batch_stats
  step = int(state["step"])

  def make_summary(examples_per_sec, wall_time_sec):
    summary = {
        "config_name": config.name, "task": config.task, "steps": step,
        "final_train_loss": last_train.get("loss"), "final_eval_loss": last_eval.get("loss"),
        "final_train_metrics": last_train, "final_eval_metrics": last_eval,
        "final_eval_metrics_by_set": last_eval_by_set,
        "param_count": int(num_params), "examples_per_sec": examples_per_sec,
        "wall_time_sec": wall_time_sec, "devices": num_devices,
        "mesh": {"data": int(mesh.shape["data"]), "fsdp": int(mesh.shape["fsdp"])},
        "checkpoint_dir": ckpt.directory, "rope_mode": model_cfg.rope_mode,
        "workdir": os.path.abspath(workdir),
    }
    if patience:
      summary.update(best_eval_loss=best_loss, best_step=best_step,
                     best_dir=os.path.abspath(best_dir))
    return summary

  if restored is not None:
    stopped_early = bool(patience) and evals_since_best >= patience
    if step >= config.total_steps or stopped_early:
      ckpt.close()
      how = (f"early-stopped at step {step} (best step {best_step})" if stopped_early
             else f"finished at step {step} of {config.total_steps}")
      tqdm.tqdm.write(f"{workdir}: run already {how}; not training again (best/ is left as "
                      f"it is; use a new --workdir for a new run)")
      return finished_summary(workdir, step, make_summary(None, None))
    tqdm.tqdm.write(f"resumed from step {step0} of {ckpt.directory}")
    prune_after(best_dir, step0)

  # --- compiled steps
  task = tasks.get(config.task)
  loss_fn = task.loss_fn(config)
  quant_meta = None
  if config.get("quant") and config.quant.qat:  # QAT: the loss runs the fake-quant forward
    loss_fn, quant_meta = task.qat_loss_fn(
        config, model_cfg, state["params"],
        make_ds(config.data.train_split, seed=config.seed, train=False),
        restored[3].get("quant") if restored is not None else None)
  train_step = multihost.sync_after_compile(jax.jit(
      steps.make_train_step(graphdef, tx, loss_fn, schedule, config.grad_accum_steps),
      out_shardings=(state_shardings, replicated), donate_argnums=(0,)), "train_step")
  eval_step = multihost.sync_after_compile(
      jax.jit(steps.make_eval_step(graphdef, loss_fn), out_shardings=replicated), "eval_step")
  key = jax.random.key(config.seed)
  eval_key = jax.random.key(config.seed + 1)

  eval_data = eval_sets(config, sources, stats, per_process_batch)

  def evaluate_on(dataset, what: str) -> dict[str, float]:
    totals, count = {}, 0
    for i, batch in enumerate(dataset):
      if config.eval_batches and i >= config.eval_batches:
        break
      if batch["emg"].shape[0] != per_process_batch:
        continue  # static shapes: the short last batch is skipped
      check_batch(batch, step)
      m = jax.device_get(eval_step(state["params"], sharding.host_to_global(mesh, batch),
                                   jax.random.fold_in(eval_key, i), state.get("batch_stats")))
      for k, v in m.items():
        totals[k] = totals.get(k, 0.0) + float(v)
      count += 1
    if not count:
      raise ValueError(f"{what} has fewer than one batch ({per_process_batch} examples per "
                       f"process)")
    return {k: v / count for k, v in totals.items()}

  def evaluate() -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Metrics on the run's eval split, and per corpus ({name: metrics}) where there are several."""
    own = evaluate_on(eval_data[""], f"split {config.data.eval_split!r}")
    return own, {name: evaluate_on(ds, f"eval set {name!r}")
                 for name, ds in eval_data.items() if name}

  # --- loop
  meta = {"model": checkpointing.model_config_to_json(model_cfg), "config_name": config.name,
          "task": config.task, "normalization": config.data.normalization,
          "input_stats": stats, "run_config": run_fields(config),
          "data_spec": data_spec(config), **(extra_meta or {})}
  if quant_meta:
    meta["quant"] = quant_meta  # QAT recipe and activation scales

  def save_checkpoint():
    """A training checkpoint whose meta carries the early-stopping state and last metrics."""
    jax.block_until_ready(state)
    progress = {"best_eval_loss": None if best_step is None else best_loss,
                "best_step": best_step, "evals_since_best": evals_since_best,
                "last_train": last_train, "last_eval": last_eval,
                "last_eval_by_set": last_eval_by_set}
    ckpt.save(step, params=saved_state(state), opt_state=state["opt_state"],
              data_iter=train_iter, meta={**meta, "progress": progress})

  writer = reporting.MetricWriter(workdir, enabled=jax.process_index() == 0)
  pending = []
  timed_steps, timed_seconds, t_last = 0, 0.0, None
  clock, step_at_start = reporting.LoopClock(), step
  bar = tqdm.tqdm(total=config.total_steps, initial=step, desc=config.name, unit="step",
                  disable=not config.progress_bar or jax.process_index() > 0,
                  dynamic_ncols=True)
  try:
    while step < config.total_steps:
      with clock.part("data"):
        batch = next(train_iter)
        check_batch(batch, step)
        batch = sharding.host_to_global(mesh, batch)
      with clock.part("compile" if step == step_at_start else "dispatch"):
        state, metrics = train_step(state, batch, key)
      pending.append(metrics)
      step += 1
      if step % config.log_every == 0 or step == config.total_steps:
        with clock.part("sync"):
          rows = jax.device_get(pending)  # the only host sync per logging interval
        pending = []
        last_train = {k: float(np.mean([r[k] for r in rows])) for k in rows[-1]}
        if not np.isfinite(last_train["loss"]):
          raise FloatingPointError(f"training loss became {last_train['loss']} at step {step}; "
                                   f"stopping without writing a checkpoint")
        now = time.time()
        if t_last is not None:
          timed_steps += len(rows)
          timed_seconds += now - t_last
        t_last = now
        eps = config.batch_size * timed_steps / timed_seconds if timed_seconds else 0.0
        writer.write(step, dict(last_train, examples_per_sec=eps), prefix="train/")
        bar.set_postfix(loss=f"{last_train['loss']:.4f}", ex_s=f"{eps:.1f}")
      bar.update(1)
      if step % config.eval_every == 0 or step == config.total_steps:
        with clock.part("sync"):
          jax.block_until_ready(state)  # the steps before it are training time
        with clock.part("eval"):
          last_eval, last_eval_by_set = evaluate()
        writer.write(step, last_eval, prefix="eval/")
        for name, values in last_eval_by_set.items():
          writer.write(step, values, prefix=f"eval/{name}/")
        if patience:
          if last_eval["loss"] < best_loss:
            best_loss, best_step, evals_since_best = last_eval["loss"], step, 0
            with clock.part("checkpoint"):
              prune_after(best_dir, step - 1)  # a same-step leftover of a killed run
              checkpointing.save_params(best_dir, saved_state(state), model_cfg, step=step,
                                        extra_meta=meta, max_to_keep=1)
          else:
            evals_since_best += 1
        t_last = time.time()  # eval time is not step time
      stop = bool(patience) and evals_since_best >= patience
      if step % config.checkpoint_every == 0 or step == config.total_steps or stop:
        with clock.part("sync"):
          jax.block_until_ready(state)
        with clock.part("checkpoint"):
          save_checkpoint()  # also at an early stop, so a re-run knows the run is over
        t_last = time.time()  # checkpoint time is not step time
      if stop:
        tqdm.tqdm.write(f"early stop at step {step}: no eval improvement in {patience} evals")
        break
  finally:
    bar.close()
    writer.close()
    ckpt.close()

  summary = make_summary(
      config.batch_size * timed_steps / timed_seconds if timed_seconds else None,
      time.time() - start_time)
  summary["loop"] = clock.report(step - step_at_start, config.batch_size)
  if jax.process_index() == 0:
    reporting.write_json_atomic(os.path.join(workdir, "summary.json"), summary)
  return summary


def check_resume_config(saved_meta: dict[str, Any], config, directory: str) -> None:
  """Refuses to resume a checkpoint written under another schedule, batch size, data or task."""
  saved = saved_meta.get("run_config")
  if saved is None:
    tqdm.tqdm.write(f"checkpoint in {directory} records no run config (an older checkpoint); "
                    f"schedule, batch size and data are not compared")
    return
  changes = config_changes(saved, config)
  if not changes:
    return
  listed = "; ".join(f"{k}: checkpoint {a!r}, config {b!r}" for k, (a, b) in changes.items())
  if config.get("allow_config_change"):
    tqdm.tqdm.write(f"continuing {directory} under a changed config "
                    f"(allow_config_change=True): {listed}")
    return
  raise checkpointing.CheckpointError(
      f"checkpoint in {directory} was written under a different config: {listed}. Use a new "
      f"--workdir for a new run, or pass --config.allow_config_change=True to continue this one "
      f"under the new values")


def finished_summary(workdir: str, step: int, rebuilt: dict[str, Any]) -> dict[str, Any]:
  """The summary of a run that is already over: its summary.json when that describes the same
  step (left untouched), else `rebuilt` from the checkpoint (written to summary.json). The
  returned paths are where the run is now (a moved workdir keeps working)."""
  path = os.path.join(workdir, "summary.json")
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      summary = json.load(f)
    if summary.get("steps") == step:
      here = ("workdir", "checkpoint_dir", "best_dir")
      return {**summary, **{k: rebuilt[k] for k in here if k in rebuilt and k in summary}}
  if jax.process_index() == 0:
    reporting.write_json_atomic(path, rebuilt)
  return rebuilt


def prune_after(directory: str, step: int) -> None:
  """Removes the steps after `step` from a params directory (`best/`): written by a run that was
  killed before its next training checkpoint, they are recomputed after the resume."""
  if not os.path.isdir(directory) or jax.process_index() != 0:
    return
  for name in os.listdir(directory):
    if name.isdigit() and int(name) > step:
      shutil.rmtree(os.path.join(directory, name))
