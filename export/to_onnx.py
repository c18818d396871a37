"""Export a Flax checkpoint to ONNX through the PyTorch module, and verify it.

The checkpoint is mapped onto `export.torch_model.TinyMyoTorch`, exported with
`torch.onnx.export` (the dynamo exporter by default; `--legacy_exporter` for TorchScript),
checked with `onnx.checker`, and run with onnxruntime on a seeded random input against the Flax
model. The verification result is printed and written beside the file as `<out>.json`; the
`.onnx` file only appears when the check passes.

  python -m export.to_onnx --ckpt CKPT_DIR --task classification --channels 8 --samples 1000 \
      --out model.onnx
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Sequence

import numpy as np

from export import parity, tasks
from tinymyo_jax import atomic_io, extras
from export.to_torch import params_to_official

DEFAULT_OPSET = 18
DEFAULT_TOLERANCE = 1e-4

OUTPUT_NAMES = {"reconstruction": "reconstruction", "classification": "logits",
                "regression": "regression", "encoder": "latent"}


class OnnxExportError(RuntimeError):
  """The export or its verification failed (message names the problem)."""


def resolve_task(task: str | None, config) -> tuple[str, str]:
  """(output kind 'head'|'encoder', ONNX output name) for a task and a checkpoint config.

  `task` is a name of `export.tasks` (a fine-tuning task of configs/finetune.py or an output
  name); None exports the checkpoint's own head.
  """
  from tinymyo_jax.models.tinymyo import ModelConfig

  if not isinstance(config, ModelConfig):
    raise OnnxExportError(f"the checkpoint holds a {type(config).__name__}; export handles "
                          f"TinyMyo checkpoints (ModelConfig)")
  if task is None:
    return "head", OUTPUT_NAMES[config.head]
  try:
    spec = tasks.lookup(task)
    tasks.check_checkpoint(spec, config, "export")
  except tasks.TaskError as e:
    raise OnnxExportError(str(e)) from e
  if spec.head is None:
    return "encoder", OUTPUT_NAMES["encoder"]
  if spec.head != config.head:
    raise OnnxExportError(f"task {task!r} needs a {spec.head} head, but the checkpoint has a "
                          f"{config.head} head (use --task encoder for the latent tokens)")
  return "head", OUTPUT_NAMES[config.head]


def check_shape(config, channels: int, samples: int) -> None:
  """Raises OnnxExportError when the checkpoint's model cannot take [B, channels, samples]."""
  if samples <= 0 or samples % config.patch_size:
    raise OnnxExportError(f"--samples {samples} must be a positive multiple of the patch size "
                          f"{config.patch_size}")
  if channels <= 0 or channels > config.max_channels:
    raise OnnxExportError(f"--channels {channels} must be in 1..{config.max_channels}")
  if config.head != "reconstruction" and channels != config.num_channels:
    raise OnnxExportError(f"the checkpoint's {config.head} head fuses {config.num_channels} "
                          f"channels; --channels {channels} does not fit it")


def torch_export(module, example: np.ndarray, path: str, *, output_name: str,
                 dynamic_batch: bool, opset: int, legacy: bool) -> None:
  """Writes `module` as a single-file ONNX model at `path`."""
  import torch

  logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # torchvision-absent notices
  x = torch.from_numpy(example)
  module.eval()
  if legacy:
    torch.onnx.export(module, (x,), path, dynamo=False, opset_version=opset,
                      input_names=["emg"], output_names=[output_name],
                      dynamic_axes={"emg": {0: "batch"}, output_name: {0: "batch"}}
                      if dynamic_batch else None)
    return
  dynamic = ({0: torch.export.Dim("batch", min=1)},) if dynamic_batch else None
  with warnings.catch_warnings():  # torch.export's own pytree deprecation notices
    warnings.simplefilter("ignore", FutureWarning)
    program = torch.onnx.export(module, (x,), dynamo=True, opset_version=opset,
                                input_names=["emg"], output_names=[output_name],
                                dynamic_shapes=dynamic, verbose=False)
  program.save(path, external_data=False)


def _sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()


def export_onnx(ckpt_dir: str, out: str, *, task: str | None = None, channels: int | None = None,
                samples: int = 1000, batch: int = 1, dynamic_batch: bool = False,
                opset: int = DEFAULT_OPSET, legacy: bool = False,
                tolerance: float = DEFAULT_TOLERANCE, seed: int = 0) -> dict:
  """Exports and verifies; returns the report (also written to `<out>.json`).

  Raises OnnxExportError when the checker or the onnxruntime-vs-Flax comparison fails; the
  report is still written then (with "passed": false) but no `.onnx` file is left at `out`.
  """
  import onnx
  import onnxruntime as ort
  import torch

  from export import torch_model
  from tinymyo_jax.checkpointing import load_params
  from tinymyo_jax.models.tinymyo import create_model

  if opset < 17:
    raise OnnxExportError(f"opset {opset} is below the supported minimum of 17")
  params, config, _ = load_params(ckpt_dir)
  output, output_name = resolve_task(task, config)
  channels = channels or (config.num_channels if config.head != "reconstruction" else 16)
  check_shape(config, channels, samples)
  tmodel = torch_model.build(config, params_to_official(params, config)).eval()
  module = torch_model.EncoderOnly(tmodel) if output == "encoder" else tmodel
  flax_model = create_model(config, params=params)

  rng = np.random.default_rng(seed)
  example = rng.standard_normal((batch, channels, samples)).astype(np.float32)
  checks = [example]
  if dynamic_batch:
    checks.append(rng.standard_normal((batch + 2, channels, samples)).astype(np.float32))

  out = os.path.abspath(out)
  os.makedirs(os.path.dirname(out), exist_ok=True)
  report = {"onnx": out, "checkpoint": os.path.abspath(ckpt_dir), "task": task or config.head,
            "output": output_name, "input": "emg", "input_shape": list(example.shape),
            "dynamic_batch": dynamic_batch, "opset": opset,
            "exporter": "torchscript" if legacy else "dynamo", "tolerance": tolerance,
            "rope_mode": config.rope_mode, "model_config": dataclasses.asdict(config),
            "versions": {"torch": torch.__version__, "onnx": onnx.__version__,
                         "onnxruntime": ort.__version__}}
  try:
    with atomic_io.atomic_path(out, suffix=".onnx") as tmp:
      t0 = time.perf_counter()
      with torch.no_grad():
        torch_export(module, example, tmp, output_name=output_name, dynamic_batch=dynamic_batch,
                     opset=opset, legacy=legacy)
      report["export_seconds"] = round(time.perf_counter() - t0, 2)
      onnx.checker.check_model(tmp, full_check=True)
      report["checker"] = "passed"
      session = ort.InferenceSession(tmp, providers=["CPUExecutionProvider"])
      report["verified_batches"] = []
      worst = 0.0
      for x in checks:
        ref = parity.flax_forward(flax_model, x, output=output)
        got = session.run([output_name], {"emg": x})[0]
        tor = parity.torch_forward(tmodel, x, output=output)
        row = {"batch": int(x.shape[0]), "output_shape": list(got.shape),
               "onnxruntime_vs_flax": parity.max_abs(got, ref),
               "torch_vs_flax": parity.max_abs(tor, ref),
               "onnxruntime_vs_torch": parity.max_abs(got, tor)}
        report["verified_batches"].append(row)
        worst = max(worst, row["onnxruntime_vs_flax"])
      report["max_abs_onnxruntime_vs_flax"] = worst
      report["passed"] = bool(worst <= tolerance)
      if not report["passed"]:
        raise OnnxExportError(f"onnxruntime output differs from Flax by {worst:.3g} > tolerance "
                              f"{tolerance:g}")
    report["bytes"] = os.path.getsize(out)
    report["sha256"] = _sha256(out)
  except Exception as e:
    report.setdefault("passed", False)
    report["error"] = f"{type(e).__name__}: {e}"
    atomic_io.write_json(out + ".json", report)
    if isinstance(e, OnnxExportError):
      raise
    raise OnnxExportError(f"ONNX export of {ckpt_dir!r} failed: {type(e).__name__}: {e}") from e
  atomic_io.write_json(out + ".json", report)
  return report


def main(argv: Sequence[str] | None = None) -> int:
  from tinymyo_jax.checkpointing import CheckpointError

  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--ckpt", required=True, help="orbax checkpoint directory")
  p.add_argument("--out", required=True, help="ONNX file to write (report: <out>.json)")
  p.add_argument("--task", default=None,
                 help="output to export (default: the checkpoint's own head): a fine-tuning task "
                 f"of configs/finetune.py or an output; {tasks.known()}")
  p.add_argument("--channels", type=int, default=None,
                 help="default: the head's channel count (16 for the pretraining head)")
  p.add_argument("--samples", type=int, default=1000)
  p.add_argument("--batch", type=int, default=1, help="static batch size of the export")
  p.add_argument("--dynamic_batch", action="store_true")
  p.add_argument("--opset", type=int, default=DEFAULT_OPSET)
  p.add_argument("--legacy_exporter", action="store_true", help="TorchScript exporter")
  p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE)
  a = p.parse_args(argv)
  try:
    report = export_onnx(a.ckpt, a.out, task=a.task, channels=a.channels, samples=a.samples,
                         batch=a.batch, dynamic_batch=a.dynamic_batch, opset=a.opset,
                         legacy=a.legacy_exporter, tolerance=a.tolerance)
  except (OnnxExportError, CheckpointError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  keys = ("onnx", "bytes", "task", "output", "input_shape", "opset", "exporter", "checker",
          "max_abs_onnxruntime_vs_flax", "tolerance", "passed")
  print(json.dumps({k: report.get(k) for k in keys}, indent=2))
  return 0


if __name__ == "__main__":
  sys.exit(extras.run_cli(main))
