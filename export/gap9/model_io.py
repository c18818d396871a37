"""Loads the classifier to deploy: an orbax checkpoint dir, or the official safetensors fixture;
the command-line flags that name it."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from flax import nnx

from export.gap9.windows import UCI_ZIP, InputSpec
from tinymyo_jax.checkpointing import load_params
from tinymyo_jax.models.tinymyo import ModelConfig, create_model, decode_variant


def pure_params(config: ModelConfig, params=None, seed: int = 0) -> dict:
  """Validated pure param dict (int block keys) for `config`; seeded init when params is None."""
  model = create_model(config, seed=seed, params=params)
  return nnx.to_pure_dict(nnx.state(model, nnx.Param))


def load_checkpoint(ckpt_dir: str | Path) -> tuple[dict, ModelConfig, InputSpec]:
  """(params, config, input spec) from a `tinymyo_jax.checkpointing` directory.

  The input spec is the checkpoint's own normalisation when its meta records one.
  """
  params, config, meta = load_params(str(ckpt_dir))
  spec = InputSpec.from_meta(meta or {}, config.num_channels)
  return pure_params(config, params), config, spec


def load_official_classifier(path: str | Path, rope_mode: str = "released",
                             reduction: str = "concat") -> tuple[dict, ModelConfig]:
  """(params, config) from a released-layout safetensors classifier (keys prefixed `model.`).

  Linear weights are transposed to [in, out]; the patch conv [192, 1, 1, 20] becomes [20, 192].
  """
  from safetensors.numpy import load_file  # export extra
  raw = {k.removeprefix("model."): v for k, v in load_file(str(path)).items()}
  num_layers = 1 + max(int(k.split(".")[1]) for k in raw if k.startswith("blocks."))
  head_w = raw["model_head.classifier.weight"]
  dim = raw["norm.weight"].shape[0]
  num_channels = head_w.shape[1] // dim if reduction == "concat" else 8
  config = decode_variant("tiny", num_layers=num_layers, head="classification",
                          num_channels=num_channels, num_outputs=head_w.shape[0],
                          rope_mode=rope_mode, reduction=reduction)
  lin = lambda name: {"kernel": raw[f"{name}.weight"].T, "bias": raw[f"{name}.bias"]}  # noqa
  ln = lambda name: {"scale": raw[f"{name}.weight"], "bias": raw[f"{name}.bias"]}  # noqa
  blocks = {}
  for i in range(num_layers):
    pre = f"blocks.{i}"
    blocks[i] = {"norm1": ln(f"{pre}.norm1"), "norm2": ln(f"{pre}.norm2"),
                 "attn": {"qkv": lin(f"{pre}.attn.qkv"), "proj": lin(f"{pre}.attn.proj")},
                 "mlp": {"fc1": lin(f"{pre}.mlp.fc1"), "fc2": lin(f"{pre}.mlp.fc2")}}
  params = {
      "patch_embed": {"kernel": raw["patch_embedding.patch_embed.proj.weight"].reshape(dim, -1).T,
                      "bias": raw["patch_embedding.patch_embed.proj.bias"]},
      "mask_token": raw["mask_token"], "blocks": blocks, "norm": ln("norm"),
      "head": {"classifier": lin("model_head.classifier")}}
  params = {k: v for k, v in params.items()}
  return pure_params(config, _as_np(params)), config


def load_model_arg(args):
  """(params, config, windows.InputSpec) from --ckpt, or --safetensors (released layout)."""
  if args.ckpt:
    return load_checkpoint(args.ckpt)
  if args.safetensors:
    return (*load_official_classifier(args.safetensors, rope_mode=args.rope_mode), InputSpec())
  raise SystemExit("pass --ckpt CKPT_DIR (or --safetensors FILE for the released layout)")


def add_model_args(parser: argparse.ArgumentParser) -> None:
  """The model and data flags shared by the GAP9 command lines (see `load_model_arg`)."""
  parser.add_argument("--ckpt", help="checkpoint dir readable by tinymyo_jax.checkpointing")
  parser.add_argument("--safetensors", help="released-layout classifier .safetensors")
  parser.add_argument("--rope_mode", default="released", help="with --safetensors only")
  parser.add_argument("--data_dir", help="prepared TFDS dir with uci_emg (else --uci_zip)")
  parser.add_argument("--uci_zip", default=str(UCI_ZIP),
                      help="UCI-EMG zip to cut windows from without --data_dir (default: the "
                           "bundled 10-subject sample)")
  parser.add_argument("--calib", type=int, default=256, help="calibration windows (train split)")
  parser.add_argument("--test_limit", type=int, default=None)


def _as_np(tree):
  if isinstance(tree, dict):
    return {k: _as_np(v) for k, v in tree.items()}
  return np.ascontiguousarray(tree, np.float32)
