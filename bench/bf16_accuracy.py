"""bf16 compute (fp32 params) vs fp32 on real UCI-EMG windows, with the released weights.

  python bench/bf16_accuracy.py [--windows 48]

Loads the released-code fixtures (`official_fixtures/tinymyo_classifier_seed0.safetensors`,
8 ch x 6 classes, and `tinymyo_pretrain_seed0.safetensors`) into the Flax model twice, once
with `dtype="float32"` and once with `dtype="bfloat16"`, and runs z-scored 8 x 1000 windows cut
from several UCI-EMG recordings. Prints, per model, the worst per-window relative error
||out_bf16 - out_fp32|| / ||out_fp32|| and, for the classifier, how many argmaxes agree and the
smallest fp32 top-1 margin among the windows (a small margin is where bf16 could flip a class).
Goal: relative error < 1e-2 and every argmax unchanged.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FIXTURES = ROOT.parent / "shared" / "reference" / "official_fixtures"
UCI_ZIP = ROOT.parent / "shared" / "data" / "uci_emg" / "EMG_data_for_gestures.zip"  # 20 subjects


def load(fixtures: Path, name: str, dtype: str):
  """Flax model with the weights of a released-code fixture, in the given compute dtype."""
  from export.import_torch import convert_state_dict, read_safetensors
  from tinymyo_jax.models.tinymyo import create_model

  state, metadata = read_safetensors(str(fixtures / name))
  params, config, _ = convert_state_dict(state, metadata=metadata)
  return create_model(dataclasses.replace(config, dtype=dtype), params=params)


def windows(count: int, zip_path: Path) -> np.ndarray:
  """`count` windows spread over the first recordings of the UCI zip (one per 3 s)."""
  from export.parity import uci_windows
  per, parts, member = 8, [], 0
  while sum(len(p) for p in parts) < count:
    parts.append(uci_windows(per, member_index=member, start_row=2000, zip_path=str(zip_path)))
    member += 1
  return np.concatenate(parts)[:count]


def main():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--windows", type=int, default=48)
  p.add_argument("--fixtures", type=Path, default=FIXTURES, help="released-code fixtures folder")
  p.add_argument("--uci_zip", type=Path, default=UCI_ZIP, help="the 20-subject UCI-EMG zip")
  args = p.parse_args()
  for flag, path in (("--fixtures", args.fixtures), ("--uci_zip", args.uci_zip)):
    if not path.exists():
      p.error(f"{flag} {path} does not exist")
  import jax.numpy as jnp

  x = jnp.asarray(windows(args.windows, args.uci_zip))
  for name in ("tinymyo_classifier_seed0.safetensors", "tinymyo_pretrain_seed0.safetensors"):
    ref = np.asarray(load(args.fixtures, name, "float32")(x), np.float64)
    low = np.asarray(load(args.fixtures, name, "bfloat16")(x), np.float64)
    axes = tuple(range(1, ref.ndim))
    rel = np.sqrt(((low - ref) ** 2).sum(axes) / (ref ** 2).sum(axes))
    line = (f"{name}: {len(x)} UCI windows 8x1000, worst relative error {rel.max():.2e} "
            f"(median {np.median(rel):.2e})")
    if ref.ndim == 2:
      top2 = np.sort(ref, axis=1)[:, -2:]
      agree = int((ref.argmax(1) == low.argmax(1)).sum())
      line += (f", argmax agrees on {agree}/{len(x)}, smallest fp32 top-1 margin "
               f"{(top2[:, 1] - top2[:, 0]).min():.3g}")
    print(line, flush=True)


if __name__ == "__main__":
  main()
