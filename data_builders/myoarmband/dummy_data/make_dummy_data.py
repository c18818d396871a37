"""Writes a small fake Myo Armband Dataset in the publisher's exact layout (run from any folder).

  python data_builders/myoarmband/dummy_data/make_dummy_data.py

Layout: `MyoArmbandDataset/{README.md,LICENSE}`, `PreTrainingDataset/{Female2,Male1}/training0/`
and `EvaluationDataset/Male1/{training0,Test0,Test1}/`, 28 files `classe_<i>.dat` in each session
folder, an `experiment.csv` per person, and a stray `CNN_fully_trained.p` in each evaluation
session folder (the publisher ships trained weights there). The same folder name `Male1` in both
groups checks that subject ids do not collide.

Each `.dat` is headerless little-endian int16, interleaved [T, 8], values in the Myo's int8
range (one file holds -128 and 127). Content is random noise plus a DC offset on channel 4. File
lengths are chosen so window counts are known exactly (window 200; labeled stride 50, `all`
stride 100): see LENGTH_OVERRIDES and LONG_FILES. Files that are not long are 36-47 samples:
enough to filter, too short for a window (the real files are 732-1038 samples; these are short
to keep the folder small).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent / "MyoArmbandDataset"
NUM_FILES = 28
DC_CHANNEL, DC_OFFSET = 3, 30
# (group, person, session folder) -> file indices i that are long (>= 200 samples); None = all.
LONG_FILES = {
    ("PreTrainingDataset", "Female2", "training0"): None,
    ("PreTrainingDataset", "Male1", "training0"): (0, 8, 16, 24),
    ("EvaluationDataset", "Male1", "training0"): None,
    ("EvaluationDataset", "Male1", "Test0"): tuple(range(0, 7)),
    ("EvaluationDataset", "Male1", "Test1"): tuple(range(21, 28)),
}
# Long files are 200 + (i * 3) % 8 samples (one window in every config) unless listed here.
LENGTH_OVERRIDES = {
    ("PreTrainingDataset", "Female2", "training0"): {5: 260, 13: 300, 16: 255, 22: 350},
    ("EvaluationDataset", "Male1", "training0"): {27: 250},
}
EXTREMES_FILE = ("PreTrainingDataset", "Female2", "training0", 0)   # holds -128 and 127
EXPERIMENT_CSV = "Sex,{sex},,\nAge,25,,\nCircumference,,17,\nDegree,Bachelor,,\n"


def file_length(group: str, person: str, session: str, i: int) -> int:
  """Number of samples of one dummy file."""
  long_files = LONG_FILES[(group, person, session)]
  if long_files is not None and i not in long_files:
    return 36 + (i * 5) % 12
  return LENGTH_OVERRIDES.get((group, person, session), {}).get(i, 200 + (i * 3) % 8)


def recording(rng: np.random.Generator, length: int) -> np.ndarray:
  """int16 [length, 8] noise in the Myo's int8 range, channel 4 offset by DC_OFFSET."""
  samples = np.rint(rng.normal(0.0, 10.0, size=(length, 8)))
  samples[:, DC_CHANNEL] += DC_OFFSET
  return np.clip(samples, -128, 127).astype("<i2")


def main() -> None:
  rng = np.random.default_rng(20180121)
  ROOT.mkdir(parents=True, exist_ok=True)
  (ROOT / "README.md").write_text("Fake copy of the Myo Armband Dataset layout, for tests.\n")
  (ROOT / "LICENSE").write_text("Placeholder: the real corpus is GNU GPL v3.\n")
  for group, person, session in LONG_FILES:
    folder = ROOT / group / person / session
    folder.mkdir(parents=True, exist_ok=True)
    (ROOT / group / person / "experiment.csv").write_text(
        EXPERIMENT_CSV.format(sex=person[0]))
    for i in range(NUM_FILES):
      samples = recording(rng, file_length(group, person, session, i))
      if (group, person, session, i) == EXTREMES_FILE:
        samples[50, 0], samples[51, 1] = -128, 127
      (folder / f"classe_{i}.dat").write_bytes(samples.tobytes())
    if group == "EvaluationDataset":
      (folder / "CNN_fully_trained.p").write_bytes(bytes(rng.integers(0, 256, 64, np.uint8)))
  total = sum(p.stat().st_size for p in ROOT.rglob("*") if p.is_file())
  print(f"wrote {ROOT} ({total} bytes)")


if __name__ == "__main__":
  main()
