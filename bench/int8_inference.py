"""Host latency of the generated INT8 C (one core) vs onnxruntime fp32 and INT8 (QDQ).

  python bench/int8_inference.py --ckpt CKPT_DIR [--data_dir TFDS_DIR] [--work DIR] [--repeat 5]

Steps: PTQ on real UCI windows -> generated C built with gcc -O2 -> bit-exact check of its
logits against the integer reference on `--check` windows -> timings. The fp32 ONNX comes from
the export bridge (`export.to_onnx`); the INT8 ONNX is `model_qdq.onnx`, written by `codegen`
from the same `QuantizedModel` (`export.gap9.qdq_onnx`: this pipeline's scales). Its argmax
agreement with the fake-quant JAX model and the integer reference is measured on `--agree`
real test windows.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from export.gap9 import codegen
from export.gap9 import int_reference as ref
from export.gap9 import qdq_onnx
from export.gap9 import quantize as q
from export.gap9.windows import load_windows
from tinymyo_jax.quant import fake_quant


def time_ort(path: Path, x: np.ndarray, repeat: int) -> float:
  sess = qdq_onnx.session(path, threads=1)
  feed = {sess.get_inputs()[0].name: x[None].astype(np.float32)}
  sess.run(None, feed)
  t0 = time.perf_counter()
  for _ in range(repeat):
    sess.run(None, feed)
  return (time.perf_counter() - t0) / repeat


def qdq_agreement(qm, params, path: Path, x: np.ndarray) -> str:
  """Argmax agreement of the QDQ ONNX (onnxruntime) with fake-quant and the integer reference."""
  got = qdq_onnx.predict(qdq_onnx.session(path), x)
  fake = q.predict(q.fake_quant_forward(qm, params), x)
  integer = ref.predict(qm, x)
  steps = np.abs(got - fake).max() / qm.scales["logits"]
  return (f"QDQ ONNX on {len(x)} real test windows: argmax = fake-quant "
          f"{(got.argmax(-1) == fake.argmax(-1)).mean() * 100:.1f} %, = integer reference "
          f"{(got.argmax(-1) == integer.argmax(-1)).mean() * 100:.1f} %; max |logit - fake-quant| "
          f"{steps:.0f} int16 steps ({steps / fake_quant.LOGIT_QMAX * 100:.2f} % of the logit "
          f"range)")


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--ckpt", required=True)
  parser.add_argument("--data_dir", help="built TFDS dir with uci_emg (else the shared zip)")
  parser.add_argument("--work", default="/tmp/gap9_bench")
  parser.add_argument("--calib", type=int, default=64)
  parser.add_argument("--check", type=int, default=2)
  parser.add_argument("--agree", type=int, default=64, help="test windows for QDQ agreement")
  parser.add_argument("--repeat", type=int, default=5)
  parser.add_argument("--recipe", default="per_channel+percentile", choices=sorted(q.RECIPES))
  parser.add_argument("--skip_onnx", action="store_true")
  args = parser.parse_args(argv)
  from export.gap9.model_io import load_checkpoint
  work = Path(args.work)
  work.mkdir(parents=True, exist_ok=True)
  params, config, spec = load_checkpoint(args.ckpt)
  x_cal, _ = load_windows("train", data_dir=args.data_dir, limit=args.calib, spec=spec)
  x_test, _ = load_windows("test", data_dir=args.data_dir,
                           limit=max(args.check, args.agree, 1), spec=spec)
  qm = q.quantize(params, config, x_cal, q.RECIPES[args.recipe])
  plan = codegen.generate(qm, work / "net")
  binary = codegen.compile_host(work / "net")
  x_q = ref.quantize_input(qm, x_test[:args.check])
  want, _ = ref.run(qm, x_q)
  for i in range(len(x_q)):
    got, _ = codegen.run_host(binary, x_q[i])
    if not np.array_equal(got, want[i]):
      raise SystemExit(f"generated C differs from the integer reference on window {i}: "
                       f"{got} vs {want[i]}")
  _, c_secs = codegen.run_host(binary, x_q[0], repeat=args.repeat)
  rows = [("generated C, INT8, 1 core (gcc -O2)", c_secs)]
  if not args.skip_onnx:
    from export.to_onnx import export_onnx
    fp32 = work / "tinymyo_fp32.onnx"
    export_onnx(args.ckpt, str(fp32), task="classification", channels=config.num_channels,
                samples=int(qm.tensors["num_samples"]))
    int8 = work / "net" / "model_qdq.onnx"
    agreement = qdq_agreement(qm, params, int8, x_test[:args.agree])
    rows += [("onnxruntime fp32, 1 thread", time_ort(fp32, x_test[0], args.repeat)),
             ("onnxruntime INT8 QDQ, 1 thread", time_ort(int8, x_test[0], args.repeat))]
  print(f"model: {config.num_layers} blocks, {config.num_channels} ch x "
        f"{int(qm.tensors['num_samples'])} samples; {sum(o.macs for o in plan.ops):,} MACs; "
        f"C logits bit-exact with the integer reference on {len(x_q)} real windows")
  if not args.skip_onnx:
    print(agreement)
  print("| runtime | ms / inference |\n|---|---:|")
  for name, secs in rows:
    print(f"| {name} | {secs * 1e3:.1f} |")


if __name__ == "__main__":
  main()
