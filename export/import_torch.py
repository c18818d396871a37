"""Import an official TinyMyo state dict (`.safetensors`) into a Flax orbax checkpoint.

Needs no PyTorch: tensors are read with the safetensors numpy API. The model config is read off
the tensors (depth, width, MLP width, patch size, head type, head channels and outputs); the
number of heads, which no shape reveals, comes from the known variant of that depth and width.
Official weights get `rope_mode="released"`, which is what the released code computes.

  python -m export.import_torch --safetensors base.safetensors --out CKPT_DIR
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence

import numpy as np

from export import weight_map as wm
from tinymyo_jax import atomic_io

# Written by `export.to_torch` into the safetensors metadata; read back on import.
CONFIG_METADATA_KEY = "tinymyo_jax.model_config"


class ImportFailure(RuntimeError):
  """The state dict cannot be imported (message names the file and the problem)."""


def read_safetensors(path: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
  """Reads all tensors (as numpy) and the string metadata of a safetensors file."""
  from safetensors import safe_open  # local: optional dependency of the export extra

  if not os.path.isfile(path):
    raise ImportFailure(f"safetensors file {path!r} does not exist")
  try:
    with safe_open(path, framework="np") as f:
      metadata = dict(f.metadata() or {})
      state = {k: f.get_tensor(k) for k in f.keys()}
  except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
    raise ImportFailure(f"cannot read {path!r} as safetensors (truncated or not a safetensors "
                       f"file?): {type(e).__name__}: {e}") from e
  return state, metadata


def _variant_for(inferred: wm.Inferred):
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
  from tinymyo_jax.models.tinymyo import ModelConfig

  saved = dict(saved_config or {})
  reduction = reduction or saved.get("reduction", "concat")
  inferred = wm.infer_architecture(state, reduction=reduction)
  variant, fields = _variant_for(inferred)
  heads = num_heads or saved.get("num_heads") or (fields or {}).get("num_heads")
  if heads is None:
    from tinymyo_jax.models.tinymyo import VARIANTS
    known = {n: (v["num_layers"], v["embed_dim"]) for n, v in VARIANTS.items()}
    raise wm.WeightMapError(
        f"the tensors describe an unknown architecture: depth {inferred.num_layers}, width "
        f"{inferred.embed_dim}, MLP width {inferred.mlp_hidden}, patch {inferred.patch_size}; "
        f"known (depth, width): {known}. Pass num_heads to import it anyway")
  if inferred.embed_dim % heads:
    raise wm.WeightMapError(f"width {inferred.embed_dim} is not divisible by num_heads {heads}")
  head_channels = inferred.num_channels
  if inferred.head == "classification" and reduction == "mean":
    head_channels = num_channels or saved.get("num_channels")
    if head_channels is None:
      raise wm.WeightMapError("a 'mean' classification head does not reveal its channel count; "
                              "pass num_channels")
  elif num_channels is not None and head_channels is not None and num_channels != head_channels:
    raise wm.WeightMapError(f"num_channels={num_channels} was given, but the head's tensors "
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
                       metadata: dict[str, str] | None = None, **config_kw):
  """Official state dict (with or without `model.`) -> (Flax params, ModelConfig, report).

  Every tensor must be consumed (or named in `ignore`, with or without the prefix) and every
  Flax parameter filled; shapes are checked against a freshly built model of the inferred
  config. Float tensors of another precision are cast to float32 and listed in the report.
  """
  import jax
  from flax import nnx

  from tinymyo_jax.models.tinymyo import TinyMyo

  state, had_prefix = wm.strip_prefix(state)
  ignore_set = {k[len(wm.OFFICIAL_PREFIX):] if k.startswith(wm.OFFICIAL_PREFIX) else k
                for k in ignore}
  not_there = sorted(ignore_set - set(state))
  if not_there:
    raise wm.WeightMapError(f"keys given to ignore are not in the state dict: {not_there}")
  ignored = sorted(ignore_set)
  state = {k: v for k, v in state.items() if k not in ignore_set}
  saved = None
  if metadata and CONFIG_METADATA_KEY in metadata:
    saved = json.loads(metadata[CONFIG_METADATA_KEY])
  config, variant = infer_config(state, saved_config=saved, **config_kw)
  table = wm.entries(config.num_layers, config.head)
  leftovers = wm.leftover_keys(state, table)
  missing = [e.official for e in table if e.official not in state]
  if leftovers or missing:
    problems = []
    if missing:
      problems.append(f"it lacks {len(missing)} tensor(s) the model needs: {missing}")
    if leftovers:
      problems.append(f"{len(leftovers)} tensor(s) have no place in the model: {leftovers} "
                      f"(pass known extras, e.g. an unused 'channel_embed', to ignore / --ignore)")
    raise wm.WeightMapError(f"state dict does not fit a TinyMyo {config.head} model "
                            f"(depth {config.num_layers}): " + "; ".join(problems))
  cast = []
  for e in table:
    arr = state[e.official]
    if not np.issubdtype(arr.dtype, np.floating):
      raise wm.WeightMapError(f"tensor {e.official!r} has dtype {arr.dtype}, expected float32")
    if arr.dtype != np.float32:
      cast.append(f"{e.official} ({arr.dtype})")
      state[e.official] = arr.astype(np.float32)
  with nnx.use_eager_sharding(False):
    abstract = nnx.eval_shape(lambda: TinyMyo(config, rngs=nnx.Rngs(0)))
  shapes = {path: tuple(leaf.shape) for path, leaf in wm.flatten_paths(
      nnx.to_pure_dict(nnx.state(abstract, nnx.Param))).items()}
  params = wm.official_to_flax(state, table, shapes)
  not_filled = sorted(".".join(map(str, p)) for p in set(shapes) - {e.flax for e in table})
  if not_filled:
    raise wm.WeightMapError(f"Flax parameters left unfilled by the state dict: {not_filled}")
  report = {"variant": variant, "had_model_prefix": had_prefix, "num_tensors": len(table),
            "num_params": int(sum(v.size for v in jax.tree.leaves(params))),
            "ignored": ignored, "cast_to_float32": cast}
  return params, config, report


def import_safetensors(path: str, out_dir: str, *, overwrite: bool = False,
                       ignore: Sequence[str] = (), **config_kw):
  """Imports `path` into a new orbax checkpoint at `out_dir`. Returns (ModelConfig, report).

  Nothing is written at `out_dir` unless the whole import succeeds.
  """
  if os.path.exists(out_dir):
    if not overwrite:
      raise ImportFailure(f"destination {out_dir!r} already exists (pass overwrite=True / "
                         f"--overwrite to replace it)")
  state, metadata = read_safetensors(path)
  try:
    params, config, report = convert_state_dict(state, ignore=ignore, metadata=metadata,
                                                **config_kw)
  except wm.WeightMapError as e:
    raise ImportFailure(f"cannot import {path!r}: {e}") from e
  report["source"] = os.path.abspath(path)
  meta = {"imported_from": report["source"], "import_report": report}
  from tinymyo_jax.checkpointing import save_params

  with atomic_io.atomic_dir(out_dir) as tmp:  # an existing out_dir is replaced only at the end
    save_params(tmp, params, config, step=0, extra_meta=meta)
  return config, report


def main(argv: Sequence[str] | None = None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--safetensors", required=True, help="official TinyMyo state dict")
  p.add_argument("--out", required=True, help="checkpoint directory to create")
  p.add_argument("--ignore", action="append", default=[], metavar="KEY",
                 help="a known extra tensor to skip (repeatable), e.g. channel_embed")
  p.add_argument("--rope_mode", choices=("released", "time", "flat"), default=None,
                 help="default: 'released' (what the released code computes)")
  p.add_argument("--num_heads", type=int, default=None,
                 help="only needed for an architecture that is not a known variant")
  p.add_argument("--reduction", choices=("concat", "mean"), default=None,
                 help="classification channel fusion (default: concat, the released one)")
  p.add_argument("--num_channels", type=int, default=None)
  p.add_argument("--target_len", type=int, default=None, help="regression output length")
  p.add_argument("--overwrite", action="store_true")
  a = p.parse_args(argv)
  try:
    config, report = import_safetensors(
        a.safetensors, a.out, overwrite=a.overwrite, ignore=a.ignore, rope_mode=a.rope_mode,
        num_heads=a.num_heads, reduction=a.reduction, num_channels=a.num_channels,
        target_len=a.target_len)
  except ImportFailure as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(json.dumps({"checkpoint": os.path.abspath(a.out), "config": dataclasses.asdict(config),
                    **report}, indent=2))
  return 0


if __name__ == "__main__":
  sys.exit(main())
