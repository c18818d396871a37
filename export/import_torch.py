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

from tinymyo_jax import atomic_io, extras, pretrained
from tinymyo_jax.models import weight_layouts as wm
# Config inference and conversion live in the library; re-exported for export/ and its tests.
from tinymyo_jax.pretrained import (  # noqa: F401
    CONFIG_METADATA_KEY, convert_state_dict, infer_config)


class ImportFailure(RuntimeError):
  """The state dict cannot be imported (message names the file and the problem)."""


def read_safetensors(path: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
  """Reads all tensors (as numpy) and the string metadata of a safetensors file."""
  try:
    return pretrained.read_safetensors(path)
  except pretrained.PretrainedError as e:
    raise ImportFailure(str(e)) from e


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
  sys.exit(extras.run_cli(main))
