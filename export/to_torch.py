"""Export a Flax checkpoint to the official TinyMyo safetensors layout.

The file holds the same keys and shapes as the released state dict (with the `model.` prefix
by default, as the released fine-tune loader expects), loads into `export.torch_model` with
`strict=True`, and carries the full model config (rope mode included) in its metadata so that
`export.import_torch` restores it exactly.

  python -m export.to_torch --ckpt CKPT_DIR --out model.safetensors
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence

import numpy as np

from tinymyo_jax.models import weight_layouts as wm
from export.import_torch import CONFIG_METADATA_KEY
from tinymyo_jax import atomic_io, extras


def checkpoint_to_official(ckpt_dir: str, *, step: int | None = None
                           ) -> tuple[dict[str, np.ndarray], object]:
  """Reads a checkpoint; returns (official state dict without prefix, ModelConfig)."""
  from tinymyo_jax.checkpointing import load_params

  params, config, _ = load_params(ckpt_dir, step)
  return params_to_official(params, config), config


def params_to_official(params, config) -> dict[str, np.ndarray]:
  """Flax params (nested dict) -> official state dict without prefix (float32 numpy)."""
  import jax

  params = jax.tree.map(lambda a: np.asarray(a, dtype=np.float32), params)
  return wm.flax_to_official(params, wm.entries(config.num_layers, config.head))


def write_safetensors(state: dict[str, np.ndarray], out: str, config, *,
                      prefix: bool = True) -> str:
  """Writes `state` (no prefix) to `out` atomically (temp file + rename). Returns the path."""
  from safetensors.numpy import save_file

  tensors = {(wm.OFFICIAL_PREFIX + k if prefix else k): v for k, v in state.items()}
  metadata = {"format": "pt",
              CONFIG_METADATA_KEY: json.dumps(dataclasses.asdict(config), sort_keys=True)}
  out = os.path.abspath(out)
  with atomic_io.atomic_path(out) as tmp:
    save_file(tensors, tmp, metadata=metadata)
  return out


def export_checkpoint(ckpt_dir: str, out: str, *, prefix: bool = True,
                      step: int | None = None):
  """Checkpoint dir -> official safetensors file. Returns (path, ModelConfig, num_tensors)."""
  state, config = checkpoint_to_official(ckpt_dir, step=step)
  return write_safetensors(state, out, config, prefix=prefix), config, len(state)


def main(argv: Sequence[str] | None = None) -> int:
  from tinymyo_jax.checkpointing import CheckpointError

  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--ckpt", required=True, help="orbax checkpoint directory")
  p.add_argument("--out", required=True, help="safetensors file to write")
  p.add_argument("--step", type=int, default=None, help="default: the latest finished step")
  p.add_argument("--no_prefix", action="store_true",
                 help="write bare keys (no 'model.' prefix), as torch_model expects directly")
  a = p.parse_args(argv)
  try:
    path, config, n = export_checkpoint(a.ckpt, a.out, prefix=not a.no_prefix, step=a.step)
  except (CheckpointError, wm.WeightMapError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(json.dumps({"safetensors": path, "bytes": os.path.getsize(path), "tensors": n,
                    "head": config.head, "rope_mode": config.rope_mode}, indent=2))
  return 0


if __name__ == "__main__":
  sys.exit(extras.run_cli(main))
