"""Released TinyMyo weights -> a ready Flax model in one call: `from_pretrained(path, ...)`.

Reads three layouts: the official safetensors (the released Lightning state dict, `model.`
prefix), braindecode's converted files (`final_layer` classifier, a Linear patch weight, no mask
token) and our own exports (`export.to_torch` safetensors, whose metadata holds the full
ModelConfig, or an orbax checkpoint directory). Argument names follow braindecode: `n_chans`,
`n_outputs`, `n_times`. Whatever the tensors determine is read from them; what they cannot tell
is asked for by name; what is given is checked against them.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from tinymyo_jax import extras
from tinymyo_jax.models import weight_layouts as wl

# Written by `export.to_torch` into the safetensors metadata; read back on import.
CONFIG_METADATA_KEY = "tinymyo_jax.model_config"
FRESH_HEADS = ("classification", "regression")


class PretrainedError(ValueError):
  """The weights cannot be loaded as asked (the message names the value and the expectation)."""


@dataclasses.dataclass
class Loaded:
  """What `load` returns: the model, its config and a report of what was read or filled in."""

  model: Any
  config: Any
  report: dict[str, Any]


# ----------------------------------------------------------------------------- reading


def read_safetensors(path: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
  """Reads all tensors (as numpy) and the string metadata of a safetensors file."""
  safe_open = extras.require("safetensors", "reading .safetensors").safe_open
  if not os.path.isfile(path):
    raise PretrainedError(f"safetensors file {path!r} does not exist")
  try:
    with safe_open(path, framework="np") as f:
      metadata = dict(f.metadata() or {})
      state = {k: f.get_tensor(k) for k in f.keys()}
  except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
    raise PretrainedError(f"cannot read {path!r} as safetensors (truncated or not a safetensors "
                          f"file?): {type(e).__name__}: {e}") from e
  return state, metadata


def _read_checkpoint(path: str) -> tuple[dict[str, np.ndarray], dict]:
  """An orbax checkpoint directory -> (official state dict, its ModelConfig as a dict)."""
  import jax

  from tinymyo_jax.checkpointing import load_params
  from tinymyo_jax.models.tinymyo import ModelConfig

  params, config, _ = load_params(path)
  if not isinstance(config, ModelConfig):
    raise PretrainedError(f"checkpoint {path!r} holds a {type(config).__name__}, not a TinyMyo "
                          f"model (ModelConfig)")
  params = jax.tree.map(lambda a: np.asarray(a, np.float32), params)
  state = wl.flax_to_official(params, wl.entries(config.num_layers, config.head))
  return state, dataclasses.asdict(config)


def read_any(path: str) -> tuple[dict[str, np.ndarray], dict | None, str]:
  """(official prefix-free state dict, saved ModelConfig dict or None, layout name) of `path`."""
  path = os.fspath(path)
  if os.path.isdir(path):
    state, saved = _read_checkpoint(path)
    return state, saved, "tinymyo-jax checkpoint"
  state, metadata = read_safetensors(path)
  state, _ = wl.strip_prefix(state)
  saved = json.loads(metadata[CONFIG_METADATA_KEY]) if CONFIG_METADATA_KEY in metadata else None
  layout = wl.detect_layout(state)
  if layout == "braindecode":
    state = wl.braindecode_to_official(state)
  elif saved is not None:
    layout = "tinymyo-jax export"
  return state, saved, layout


# ----------------------------------------------------------------------------- config


def _variant_for(inferred: wl.Inferred):
  """The known variant (name, fields) with this depth, width, MLP width and patch size."""
  from tinymyo_jax.models.tinymyo import VARIANTS

  for name, v in VARIANTS.items():
    if (v["num_layers"], v["embed_dim"], int(v["embed_dim"] * v["mlp_ratio"]),
        v["patch_size"]) == (inferred.num_layers, inferred.embed_dim, inferred.mlp_hidden,
                             inferred.patch_size):
      return name, v
  return None, None


def infer_config(state: dict[str, np.ndarray], *, rope_mode: str | None = None,
                 num_heads: int | None = None, reduction: str | None = None,
                 num_channels: int | None = None, target_len: int | None = None,
                 saved_config: dict | None = None):
  """Builds the ModelConfig that fits a prefix-free official state dict.

  `saved_config` (a ModelConfig as JSON, written by our own exporter) supplies the fields that
  shapes cannot tell (rope mode, heads, dropout, target length, reduction); explicit arguments
  override it. Without either, the released conventions apply.
  """
  from tinymyo_jax.models.tinymyo import VARIANTS, ModelConfig

  saved = dict(saved_config or {})
  reduction = reduction or saved.get("reduction", "concat")
  inferred = wl.infer_architecture(state, reduction=reduction)
  variant, fields = _variant_for(inferred)
  heads = num_heads or saved.get("num_heads") or (fields or {}).get("num_heads")
  if heads is None:
    known = {n: (v["num_layers"], v["embed_dim"]) for n, v in VARIANTS.items()}
    raise wl.WeightMapError(
        f"the tensors describe an unknown architecture: depth {inferred.num_layers}, width "
        f"{inferred.embed_dim}, MLP width {inferred.mlp_hidden}, patch {inferred.patch_size}; "
        f"known (depth, width): {known}. Pass num_heads to import it anyway")
  if inferred.embed_dim % heads:
    raise wl.WeightMapError(f"width {inferred.embed_dim} is not divisible by num_heads {heads}")
  head_channels = inferred.num_channels
  if inferred.head == "classification" and reduction == "mean":
    head_channels = num_channels or saved.get("num_channels")
    if head_channels is None:
      raise wl.WeightMapError("a 'mean' classification head does not reveal its channel count; "
                              "pass num_channels")
  elif num_channels is not None and head_channels is not None and num_channels != head_channels:
    raise wl.WeightMapError(f"num_channels={num_channels} was given, but the head's tensors "
                            f"are built for {head_channels} channels")
  base = {f.name: saved[f.name] for f in dataclasses.fields(ModelConfig) if f.name in saved}
  cfg = dict(base)
  cfg.update(num_layers=inferred.num_layers, embed_dim=inferred.embed_dim, num_heads=heads,
             mlp_ratio=inferred.mlp_hidden / inferred.embed_dim, patch_size=inferred.patch_size,
             head=inferred.head, num_outputs=inferred.num_outputs, reduction=reduction,
             rope_mode=rope_mode or saved.get("rope_mode", "released"))
  if head_channels is not None:
    cfg["num_channels"] = head_channels
    cfg["max_channels"] = max(cfg.get("max_channels", 16), head_channels)
  if target_len is not None:
    cfg["target_len"] = target_len
  if inferred.head == "reconstruction":
    cfg["num_outputs"] = 0  # the decoder width is the patch size, not an output count
  return ModelConfig(**cfg), variant


def convert_state_dict(state: dict[str, np.ndarray], *, ignore: Sequence[str] = (),
                       metadata: dict[str, str] | None = None, saved_config: dict | None = None,
                       **config_kw):
  """Official state dict (with or without `model.`) -> (Flax params, ModelConfig, report).

  Every tensor must be consumed (or named in `ignore`, with or without the prefix) and every
  Flax parameter filled; shapes are checked against a freshly built model of the inferred
  config. Float tensors of another precision are cast to float32 and listed in the report.
  """
  import jax
  from flax import nnx

  from tinymyo_jax.models.tinymyo import TinyMyo

  state, had_prefix = wl.strip_prefix(state)
  ignore_set = {k[len(wl.OFFICIAL_PREFIX):] if k.startswith(wl.OFFICIAL_PREFIX) else k
                for k in ignore}
  not_there = sorted(ignore_set - set(state))
  if not_there:
    raise wl.WeightMapError(f"keys given to ignore are not in the state dict: {not_there}")
  ignored = sorted(ignore_set)
  state = {k: v for k, v in state.items() if k not in ignore_set}
  saved = saved_config
  if saved is None and metadata and CONFIG_METADATA_KEY in metadata:
    saved = json.loads(metadata[CONFIG_METADATA_KEY])
  config, variant = infer_config(state, saved_config=saved, **config_kw)
  table = wl.entries(config.num_layers, config.head)
  leftovers = wl.leftover_keys(state, table)
  missing = [e.official for e in table if e.official not in state]
  if leftovers or missing:
    problems = []
    if missing:
      problems.append(f"it lacks {len(missing)} tensor(s) the model needs: {missing}")
    if leftovers:
      problems.append(f"{len(leftovers)} tensor(s) have no place in the model: {leftovers} "
                      f"(pass known extras, e.g. an unused 'channel_embed', to ignore / --ignore)")
    raise wl.WeightMapError(f"state dict does not fit a TinyMyo {config.head} model "
                            f"(depth {config.num_layers}): " + "; ".join(problems))
  cast = []
  for e in table:
    arr = state[e.official]
    if not np.issubdtype(arr.dtype, np.floating):
      raise wl.WeightMapError(f"tensor {e.official!r} has dtype {arr.dtype}, expected float32")
    if arr.dtype != np.float32:
      cast.append(f"{e.official} ({arr.dtype})")
      state[e.official] = arr.astype(np.float32)
  with nnx.use_eager_sharding(False):
    abstract = nnx.eval_shape(lambda: TinyMyo(config, rngs=nnx.Rngs(0)))
  shapes = {path: tuple(leaf.shape) for path, leaf in wl.flatten_paths(
      nnx.to_pure_dict(nnx.state(abstract, nnx.Param))).items()}
  params = wl.official_to_flax(state, table, shapes)
  not_filled = sorted(".".join(map(str, p)) for p in set(shapes) - {e.flax for e in table})
  if not_filled:
    raise wl.WeightMapError(f"Flax parameters left unfilled by the state dict: {not_filled}")
  report = {"variant": variant, "had_model_prefix": had_prefix, "num_tensors": len(table),
            "num_params": int(sum(v.size for v in jax.tree.leaves(params))),
            "ignored": ignored, "cast_to_float32": cast}
  return params, config, report


# ----------------------------------------------------------------------------- one call


def _head_kind(state) -> str | None:
  kinds = [kind for key, kind in wl.HEAD_MARKERS.items() if key in state]
  return kinds[0] if len(kinds) == 1 else (None if not kinds else "several")


def _classifier_reduction(state, embed_dim: int, n_chans, reduction, saved) -> str:
  """'concat' or 'mean' for the classifier in `state`; asks when its shape cannot tell."""
  fused = state["model_head.classifier.weight"].shape[1]
  if reduction is None:
    reduction = (saved or {}).get("reduction")
  if reduction is None:
    if fused != embed_dim:
      return "concat"
    if n_chans is None:
      raise PretrainedError(
          f"the classifier takes {fused} = embed_dim features: a 'mean' head (any channel "
          f"count) or a 'concat' head over 1 channel; pass reduction='mean' or 'concat' "
          f"(or n_chans)")
    return "concat" if n_chans == 1 else "mean"
  if reduction not in ("concat", "mean"):
    raise PretrainedError(f"reduction={reduction!r}; expected 'concat' or 'mean'")
  if reduction == "mean" and fused != embed_dim:
    raise PretrainedError(f"reduction='mean' needs a classifier over {embed_dim} features, the "
                          f"tensors have {fused} (a concat head over {fused // embed_dim} "
                          f"channels)")
  return reduction


def _check_given(config, n_chans, n_outputs, n_times) -> None:
  """One-line errors for user arguments that contradict the loaded model."""
  if n_times is not None and n_times % config.patch_size:
    raise PretrainedError(f"n_times={n_times} is not a multiple of the patch size "
                          f"{config.patch_size} read from the tensors")
  if config.head == "reconstruction":
    return
  if n_chans is not None and n_chans != config.num_channels:
    raise PretrainedError(f"n_chans={n_chans} does not match the tensors: the {config.head} "
                          f"head is built for {config.num_channels} channels")
  if n_outputs is not None and n_outputs != config.num_outputs:
    raise PretrainedError(f"n_outputs={n_outputs} does not match the tensors: the "
                          f"{config.head} head has {config.num_outputs} outputs")


def load(path: str, n_chans: int | None = None, n_outputs: int | None = None,
         n_times: int | None = None, *, reduction: str | None = None,
         num_heads: int | None = None, rope_mode: str | None = None,
         head: str = "classification", target_len: int | None = None, seed: int = 0,
         ignore: Sequence[str] = ()) -> Loaded:
  """`from_pretrained` returning the model with its config and a report (see there)."""
  import jax
  from flax import nnx

  from tinymyo_jax.checkpointing import CheckpointError
  from tinymyo_jax.models.tinymyo import create_model, load_pure_params, trunc_normal

  path = os.fspath(path)
  try:
    state, saved, layout = read_any(path)
    patch_weight = state[f"{wl.OFFICIAL_PATCH}.weight"]
    embed_dim, patch = patch_weight.shape[0], patch_weight.shape[-1]
    kind = _head_kind(state)
    filled = []
    if "mask_token" not in state:  # braindecode drops it; only masked pretraining uses it
      state["mask_token"] = np.asarray(trunc_normal(0.02)(jax.random.key(seed),
                                                          (1, 1, embed_dim)))
      filled.append("mask_token")
    fresh = kind is None or (kind == "reconstruction" and n_outputs is not None)
    if fresh:
      if head not in FRESH_HEADS:
        raise PretrainedError(f"head={head!r}; a fresh head is one of {FRESH_HEADS}")
      if n_outputs is None:
        raise PretrainedError(f"{path!r} has no task head; pass n_outputs= (and n_chans=) to "
                              f"build a fresh {head} head")
      if n_chans is None and not (head == "classification" and reduction == "mean"):
        raise PretrainedError(f"a fresh {reduction or 'concat'} {head} head needs the channel "
                              f"count; pass n_chans=")
      if kind is None:  # a placeholder decoder lets the encoder convert as a reconstruction model
        state["model_head.decoder_pred.weight"] = np.zeros((patch, embed_dim), np.float32)
        state["model_head.decoder_pred.bias"] = np.zeros((patch,), np.float32)
      kind = "reconstruction"
    elif kind == "classification":
      reduction = _classifier_reduction(state, embed_dim, n_chans, reduction, saved)
    num_channels = n_chans if kind == "classification" and reduction == "mean" else None
    params, config, report = convert_state_dict(
        state, ignore=ignore, saved_config=saved, rope_mode=rope_mode, num_heads=num_heads,
        reduction=reduction if kind == "classification" else None, num_channels=num_channels,
        target_len=target_len)
    if fresh:
      config = dataclasses.replace(
          config, head=head, num_outputs=n_outputs, reduction=reduction or "concat",
          num_channels=n_chans or config.num_channels,
          max_channels=max(config.max_channels, n_chans or 0),
          target_len=target_len or config.target_len)
      filled.append("head")
    elif n_chans is not None and n_chans > config.max_channels:
      config = dataclasses.replace(config, max_channels=n_chans)
    _check_given(config, n_chans, n_outputs, n_times)
  except (wl.WeightMapError, CheckpointError) as e:
    raise PretrainedError(f"cannot load {path!r}: {e}") from e
  model = create_model(config, seed=seed)
  if fresh:
    params = {**params, "head": nnx.to_pure_dict(nnx.state(model.head, nnx.Param))}
  load_pure_params(model, params)
  report.update(layout=layout, filled=filled, source=os.path.abspath(path))
  return Loaded(model, config, report)


def from_pretrained(path: str, n_chans: int | None = None, n_outputs: int | None = None,
                    n_times: int | None = None, **kw):
  """A ready TinyMyo Flax model from released, braindecode or our own weights.

  The model is ready for inference: calls are deterministic unless `deterministic=False`.

  Args:
    path: a `.safetensors` file (official, braindecode or `export.to_torch` layout) or an orbax
      checkpoint directory written by this project.
    n_chans: input channels. Checked against a concat/regression head; needed for a fresh head.
    n_outputs: classes (or regression outputs). Checked against the file's head; with a file
      that has no task head (braindecode's pretrained encoder, or the official pretraining file)
      it builds a fresh `head` (default 'classification', seeded by `seed`).
    n_times: window length; checked to be a multiple of the patch size.
    **kw: `reduction` ('concat' / 'mean', when the head shape cannot tell), `num_heads` (for an
      architecture that is not a known variant), `rope_mode`, `head`, `target_len`, `seed`,
      `ignore` (extra tensors to skip, e.g. an unused 'channel_embed').

  Raises:
    PretrainedError: a missing argument that the tensors cannot supply, an argument that
      contradicts them, or a file of no known layout (each named in one line).
  """
  return load(path, n_chans, n_outputs, n_times, **kw).model
