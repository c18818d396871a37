"""Streaming-inference latency per window of `tinymyo_jax.infer` on a real UCI recording.

Writes a randomly initialised classification checkpoint of the chosen variant (8 channels,
6 classes, 1 kHz, 1000-sample windows, the UCI builder's filter) to a temporary folder, then
classifies one recording of the UCI zip at each batch size and prints ms/window as JSON lines.
Weights do not change the latency, so random ones are enough.

Usage: python bench/infer_latency.py [--variant tiny --batch_sizes 1,8,32 --hop 250
                                      --member EMG_data_for_gestures-master/01/1_raw_...txt]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import zipfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
from flax import nnx  # noqa: E402

from data_builders.uci_emg import uci_emg_dataset_builder as uci  # noqa: E402
from tinymyo_jax import checkpointing, infer  # noqa: E402
from tinymyo_jax.models.tinymyo import create_model, decode_variant  # noqa: E402

# The bundled sample holds the recording timed here (the same file as in the full corpus).
ZIP = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data_builders",
                   "uci_emg", "sample", "EMG_data_for_gestures.zip")


def main():
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("--variant", default="tiny")
  p.add_argument("--batch_sizes", default="1,8,32")
  p.add_argument("--hop", type=int, default=250)
  p.add_argument("--zip", default=ZIP)
  p.add_argument("--member",
                 default="EMG_data_for_gestures-master/01/1_raw_data_13-12_22.03.16.txt")
  args = p.parse_args()
  if not os.path.isfile(args.zip):
    p.error(f"--zip {args.zip} does not exist (the UCI-EMG distribution zip)")
  with tempfile.TemporaryDirectory() as tmp:
    cfg = decode_variant(args.variant, head="classification", num_channels=8, num_outputs=6,
                         rope_mode="released")
    model = create_model(cfg)
    meta = {"task": "uci", "data": {"sample_rate_hz": 1000.0, "num_channels": 8, "window": 1000,
                                    "normalization": "zscore", "class_names": list(uci.CLASS_NAMES),
                                    "filter": {"band": [20.0, 90.0], "notch": 50.0}}}
    ckpt = os.path.join(tmp, "ckpt")
    checkpointing.save_params(ckpt, nnx.to_pure_dict(nnx.state(model, nnx.Param)), cfg,
                              extra_meta=meta)
    txt = os.path.join(tmp, os.path.basename(args.member))
    with zipfile.ZipFile(args.zip) as archive, open(txt, "wb") as out:
      out.write(archive.read(args.member))
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
      result = infer.run(ckpt, txt, hop=args.hop, batch_size=batch_size, progress=False)
      s = result["summary"]
      print(json.dumps({
          "variant": args.variant, "batch_size": batch_size, "windows": s["num_windows"],
          "recording_s": round(s["duration_s"], 2), "compile_s": round(s["compile_s"], 2),
          "ms_per_window_mean": round(s["latency_ms_mean"], 3),
          "ms_per_window_p95": round(s["latency_ms_p95"], 3),
          "real_time_factor": round(s["real_time_factor"], 4),
          "device": jax.devices()[0].device_kind, "cpus": os.cpu_count(),
          "machine": platform.machine()}), flush=True)


if __name__ == "__main__":
  main()
