"""One-shot export: checkpoint -> official safetensors -> parity check -> ONNX, with a summary.

`--ckpt` is an orbax checkpoint directory, or an official `.safetensors` file, which is first
imported into `<out_dir>/checkpoint`. Writes `<out_dir>/model.safetensors`, `model.onnx`,
`model.onnx.json` and `export_report.json`, then prints each file with its size and the parity
figures (round trip, Flax vs PyTorch on random and real UCI-EMG windows, ONNX vs Flax).

  python -m export.all --ckpt CKPT --task classification --out_dir exports/uci
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence

import numpy as np

from export import import_torch, parity, to_onnx, to_torch
from export import tasks as export_tasks
from tinymyo_jax import extras
from tinymyo_jax.models import weight_layouts as wm

DEFAULT_TOLERANCE = 1e-5  # Flax vs PyTorch, fp32


class ParityError(RuntimeError):
  """The exported PyTorch weights do not reproduce the Flax model."""


def _real_windows(channels: int, samples: int, batch: int,
                  zip_path: str = parity.UCI_ZIP) -> np.ndarray:
  """Real UCI-EMG windows [batch, channels, samples] (8-channel windows stacked).

  From the UCI sample bundled in the repository unless `zip_path` names another copy.
  """
  blocks = -(-channels // 8)
  w = parity.uci_windows(batch * blocks, samples=samples, zip_path=zip_path)  # [b*blocks, 8, T]
  return w.reshape(batch, blocks * 8, samples)[:, :channels]


def _same_tensors(a_path: str, b_path: str, ignore: Sequence[str]) -> bool:
  """Whether two official safetensors files hold bit-identical tensors.

  The `model.` prefix does not matter; extras of the first file named in `ignore` are left out.
  """
  a, _ = wm.strip_prefix(import_torch.read_safetensors(a_path)[0])
  b, _ = wm.strip_prefix(import_torch.read_safetensors(b_path)[0])
  skip = {k.removeprefix(wm.OFFICIAL_PREFIX) for k in ignore}
  a = {k: v for k, v in a.items() if k not in skip}
  return a.keys() == b.keys() and all(
      a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and a[k].tobytes() == b[k].tobytes()
      for k in a)


def torch_parity(ckpt_dir: str, safetensors_path: str, *, channels: int, samples: int,
                 output: str, batch: int = 2, seed: int = 0,
                 uci_zip: str = parity.UCI_ZIP) -> dict:
  """Compares the PyTorch module (loaded from the written file) with the Flax model.

  Uses random and real UCI-EMG windows (`uci_zip`, default the bundled sample); also checks
  that re-importing the file gives bit-identical parameters and the same config.
  """
  from export import torch_model
  from tinymyo_jax.checkpointing import load_params
  from tinymyo_jax.models.tinymyo import create_model

  params, config, _ = load_params(ckpt_dir)
  state, metadata = import_torch.read_safetensors(safetensors_path)
  back, back_config, _ = import_torch.convert_state_dict(state, metadata=metadata)
  ref = wm.flatten_paths(params)
  got = wm.flatten_paths(back)
  identical = (ref.keys() == got.keys() and back_config == config and all(
      np.asarray(ref[k]).tobytes() == np.asarray(got[k]).tobytes() for k in ref))
  tmodel = torch_model.build(config, state)
  fmodel = create_model(config, params=params)
  inputs = {"random": np.random.default_rng(seed).standard_normal(
      (batch, channels, samples)).astype(np.float32)}
  inputs["uci_emg"] = _real_windows(channels, samples, batch, uci_zip)
  diffs = {name: parity.max_abs(parity.torch_forward(tmodel, x, output=output),
                                parity.flax_forward(fmodel, x, output=output))
           for name, x in inputs.items()}
  return {"roundtrip_bit_identical": bool(identical), "torch_vs_flax": diffs,
          "input_shape": [batch, channels, samples]}


def run(ckpt: str, out_dir: str, *, task: str | None = None, channels: int | None = None,
        samples: int = 1000, dynamic_batch: bool = False, ignore: Sequence[str] = (),
        tolerance: float = DEFAULT_TOLERANCE, overwrite: bool = False,
        uci_zip: str = parity.UCI_ZIP) -> dict:
  """Runs every step; returns the summary (also written to `<out_dir>/export_report.json`)."""
  os.makedirs(out_dir, exist_ok=True)
  summary: dict = {"source": os.path.abspath(ckpt)}
  ckpt_source = ckpt
  if ckpt.endswith(".safetensors"):
    ckpt_dir = os.path.join(out_dir, "checkpoint")
    config, report = import_torch.import_safetensors(ckpt, ckpt_dir, ignore=ignore,
                                                     overwrite=overwrite)
    summary["import"] = report
    ckpt = ckpt_dir
  st_path, config, _ = to_torch.export_checkpoint(ckpt, os.path.join(out_dir, "model.safetensors"))
  if "import" in summary:  # the original file against what came out, tensor by tensor
    summary["source_vs_export_bit_identical"] = _same_tensors(ckpt_source, st_path, ignore)
  output, _ = to_onnx.resolve_task(task, config)
  if channels is None:
    channels = config.num_channels if config.head != "reconstruction" else 16
  to_onnx.check_shape(config, channels, samples)
  summary["model_config"] = dataclasses.asdict(config)
  summary["torch"] = torch_parity(ckpt, st_path, channels=channels, samples=samples,
                                  output=output, uci_zip=uci_zip)
  worst = max(summary["torch"]["torch_vs_flax"].values())
  summary["torch"]["passed"] = bool(worst <= tolerance and
                                    summary["torch"]["roundtrip_bit_identical"])
  onnx_report = to_onnx.export_onnx(ckpt, os.path.join(out_dir, "model.onnx"), task=task,
                                    channels=channels, samples=samples,
                                    dynamic_batch=dynamic_batch)
  summary["onnx"] = {k: onnx_report[k] for k in ("max_abs_onnxruntime_vs_flax", "tolerance",
                                                  "passed", "opset", "exporter")}
  summary["files"] = {name: os.path.getsize(os.path.join(out_dir, name))
                      for name in ("model.safetensors", "model.onnx", "model.onnx.json")}
  summary["checkpoint"] = os.path.abspath(ckpt)
  with open(os.path.join(out_dir, "export_report.json"), "w") as f:
    json.dump(summary, f, indent=2)
  if not summary["torch"]["passed"] or not summary.get("source_vs_export_bit_identical", True):
    raise ParityError(f"PyTorch parity failed: {summary['torch']}")
  return summary


def format_summary(summary: dict, out_dir: str) -> str:
  """Human-readable table of files and parity figures."""
  lines = [f"checkpoint: {summary['checkpoint']}"]
  for name, size in summary["files"].items():
    shown = f"{size / 1e6:9.2f} MB" if size >= 1e5 else f"{size / 1e3:9.2f} kB"
    lines.append(f"  {os.path.join(out_dir, name):<60} {shown}")
  if "source_vs_export_bit_identical" in summary:
    lines.append(f"source .safetensors vs exported, bit-identical per tensor: "
                 f"{summary['source_vs_export_bit_identical']}")
  t = summary["torch"]
  lines.append(f"exported file re-imports bit-identical: {t['roundtrip_bit_identical']}")
  for name, d in t["torch_vs_flax"].items():
    lines.append(f"PyTorch vs Flax max-abs ({name}, {t['input_shape']}): {d:.2e}")
  o = summary["onnx"]
  lines.append(f"onnxruntime vs Flax max-abs: {o['max_abs_onnxruntime_vs_flax']:.2e} "
               f"(tolerance {o['tolerance']:g}, opset {o['opset']}, {o['exporter']})")
  return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
  from tinymyo_jax.checkpointing import CheckpointError

  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--ckpt", required=True, help="checkpoint directory or official .safetensors")
  p.add_argument("--out_dir", required=True)
  p.add_argument("--task", default=None,
                 help=f"default: the checkpoint's own head; {export_tasks.known()}")
  p.add_argument("--channels", type=int, default=None)
  p.add_argument("--samples", type=int, default=1000)
  p.add_argument("--dynamic_batch", action="store_true")
  p.add_argument("--ignore", action="append", default=[], metavar="KEY",
                 help="known extra tensor of a .safetensors source to skip (repeatable)")
  p.add_argument("--overwrite", action="store_true", help="replace an earlier import")
  p.add_argument("--uci_zip", default=parity.UCI_ZIP,
                 help="UCI-EMG zip for the real-window parity check (default: the bundled sample)")
  a = p.parse_args(argv)
  for package in ("torch", "safetensors", "onnx", "onnxruntime"):  # before any work is done
    extras.require(package, "export")
  try:
    summary = run(a.ckpt, a.out_dir, task=a.task, channels=a.channels, samples=a.samples,
                  dynamic_batch=a.dynamic_batch, ignore=a.ignore, overwrite=a.overwrite,
                  uci_zip=a.uci_zip)
  except (import_torch.ImportFailure, to_onnx.OnnxExportError, ParityError, CheckpointError,
          wm.WeightMapError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(format_summary(summary, a.out_dir))
  return 0


if __name__ == "__main__":
  sys.exit(extras.run_cli(main))
