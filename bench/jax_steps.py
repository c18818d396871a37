"""The trainer's own compiled steps at any window shape, for the benchmark scripts.

Three kinds of training step, each `steps.make_train_step` with the task's loss and the run's
optimizer, exactly as `tinymyo_jax.main` builds it:
  pretrain  masked-patch reconstruction (`configs/pretrain.py:default`), AdamW
  finetune  classification head, cross-entropy, AdamW with layer-wise LR decay
            (`configs/finetune.py:uci_200hz` with the benchmark's channel count)
  probe     the same with `finetune.freeze_backbone=True` (linear probing: no backward pass
            through the encoder)
Batches are synthetic: standard-normal EMG and random labels.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np

KINDS = ("pretrain", "finetune", "probe")


def make_config(kind: str, *, channels: int, batch: int, variant: str = "tiny",
                dtype: str = "float32", rope_mode: str = "time"):
  """The run config of one step kind at `channels` x any samples."""
  from configs import finetune, pretrain

  if kind not in KINDS:
    raise ValueError(f"unknown step kind {kind!r}; expected one of {KINDS}")
  if kind == "pretrain":
    config = pretrain.get_config("default").unlock()
  else:
    config = finetune.get_config("uci_200hz").unlock()
    config.model.num_channels = channels
    config.finetune.freeze_backbone = kind == "probe"
  config.model.variant, config.model.dtype, config.model.rope_mode = variant, dtype, rope_mode
  config.batch_size, config.total_steps = batch, 1000
  return config


def synthetic_batch(config, batch: int, channels: int, samples: int, seed: int = 0) -> dict:
  """{"emg": [B, C, T] float32} plus random integer labels for a classification task."""
  rng = np.random.default_rng(seed)
  out = {"emg": rng.standard_normal((batch, channels, samples), dtype=np.float32)}
  if config.task == "classification":
    out["label"] = rng.integers(0, config.model.num_outputs, batch, dtype=np.int32)
  return out


class Step(NamedTuple):
  """A jitted, donating training step with everything needed to call and describe it."""
  step: Any
  state: Any
  batch: dict
  key: jax.Array
  graphdef: Any
  config: Any


def build(kind: str, *, channels: int, samples: int, batch: int, variant: str = "tiny",
          dtype: str = "float32", rope_mode: str = "time") -> Step:
  """The trainer's step of one kind at one shape, on a synthetic batch."""
  from tinymyo_jax import sharding, steps, tasks, train

  config = make_config(kind, channels=channels, batch=batch, variant=variant, dtype=dtype,
                       rope_mode=rope_mode)
  mesh = sharding.make_mesh(-1, 1)
  tx, schedule = train.make_optimizer(config)
  graphdef, state = train.init_state(train.model_config_from(config), mesh, tx, config.seed)
  loss_fn = tasks.get(config.task).loss_fn(config)
  step = jax.jit(steps.make_train_step(graphdef, tx, loss_fn, schedule), donate_argnums=(0,))
  data = sharding.host_to_global(mesh, synthetic_batch(config, batch, channels, samples))
  return Step(step, state, data, jax.random.key(0), graphdef, config)
