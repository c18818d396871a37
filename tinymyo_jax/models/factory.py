"""One place that maps a model config to its module, its JSON form and its saved state.

Two model kinds exist: `TinyMyo` (`ModelConfig`) and the silent-speech `SpeechModel`
(`SpeechConfig`). A checkpoint's `meta["model"]` holds the config's fields plus, for the speech
model only, `"model_type": "speech"`; older checkpoints without the key are TinyMyo.

Saved parameter trees are `nnx.to_pure_dict(nnx.state(model))`: the `nnx.Param` leaves and, for
the speech model, the BatchNorm running statistics (`nnx.BatchStat`, leaves `mean`/`var` next to
each BatchNorm's `scale`/`bias`). `split_stats` separates them again.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from flax import nnx

from tinymyo_jax.models import speech
from tinymyo_jax.models.tinymyo import ModelConfig, TinyMyo, int_keys, load_pure_params

SPEECH = "speech"
MODEL_TYPE_KEY = "model_type"
AnyConfig = ModelConfig | speech.SpeechConfig


def build(config: AnyConfig, *, rngs: nnx.Rngs) -> nnx.Module:
  """The module for `config`: TinyMyo for a ModelConfig, SpeechModel for a SpeechConfig."""
  if isinstance(config, speech.SpeechConfig):
    return speech.SpeechModel(config, rngs=rngs)
  if isinstance(config, ModelConfig):
    return TinyMyo(config, rngs=rngs)
  raise TypeError(f"no model for config type {type(config).__name__}")


def create(config: AnyConfig, *, seed: int = 0, state=None) -> nnx.Module:
  """Builds an unsharded model; with `state` (a saved pure dict) loads params and batch stats."""
  with nnx.use_eager_sharding(False):
    model = build(config, rngs=nnx.Rngs(seed))
  if state is not None:
    load_state(model, state)
  return model


def load_state(model: nnx.Module, state) -> None:
  """Copies a saved pure dict into `model`, checking every name and shape.

  Raises:
    ValueError: a missing, unexpected or differently shaped entry (named).
  """
  if not isinstance(model, speech.SpeechModel):
    load_pure_params(model, state)
    return
  params, stats = split_stats(int_keys(state), nnx.to_pure_dict(nnx.state(model, nnx.BatchStat)))
  load_pure_params(model, params)  # checks and loads the nnx.Param leaves
  target = nnx.state(model, nnx.BatchStat)
  expected = nnx.to_pure_dict(target)
  for path, value in _leaves(expected):
    got = _get(stats, path)
    if got is None or tuple(got.shape) != tuple(value.shape):
      shape = None if got is None else tuple(got.shape)
      raise ValueError(f"batch statistic {'/'.join(map(str, path))} has shape {shape}, the "
                       f"model expects {tuple(value.shape)}")
  nnx.replace_by_pure_dict(target, stats)
  nnx.update(model, target)


def config_to_json(config: AnyConfig) -> dict[str, Any]:
  """The config's fields as JSON; the speech config is tagged with `model_type`."""
  data = dataclasses.asdict(config)
  if isinstance(config, speech.SpeechConfig):
    data[MODEL_TYPE_KEY] = SPEECH
  return data


def config_from_json(data: dict[str, Any]) -> AnyConfig:
  """Inverse of `config_to_json` (untagged = TinyMyo, as in checkpoints before speech).

  Raises:
    ValueError: an unknown model type or unknown fields (named).
  """
  data = dict(data)
  kind = data.pop(MODEL_TYPE_KEY, "tinymyo")
  if kind not in ("tinymyo", SPEECH):
    raise ValueError(f"unknown model_type {kind!r}; expected 'tinymyo' or {SPEECH!r}")
  cls = speech.SpeechConfig if kind == SPEECH else ModelConfig
  unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
  if unknown:
    raise ValueError(f"{cls.__name__} in the checkpoint has unknown fields {sorted(unknown)}")
  return cls(**data)


# ----------------------------------------------------------------------------- pure dicts


def _leaves(tree, prefix=()):
  if isinstance(tree, dict):
    for k, v in tree.items():
      yield from _leaves(v, prefix + (k,))
  else:
    yield prefix, tree


def _get(tree, path):
  for k in path:
    if not isinstance(tree, dict) or k not in tree:
      return None
    tree = tree[k]
  return tree


def merge_stats(params, stats):
  """One nested dict holding both trees (what a checkpoint stores); `stats` may be empty."""
  if not stats:
    return params
  out = dict(params)
  for key, value in stats.items():
    out[key] = merge_stats(out[key], value) if isinstance(value, dict) and key in out else value
  return out


def split_stats(tree, like):
  """(rest, part): `part` has the entries of `tree` at the paths of `like`, `rest` the others."""
  if not like:
    return tree, {}
  rest, part = {}, {}
  for key, value in tree.items():
    if key not in like:
      rest[key] = value
    elif isinstance(like[key], dict):
      rest_child, part[key] = split_stats(value, like[key])
      if rest_child:
        rest[key] = rest_child
    else:
      part[key] = value
  return rest, part
