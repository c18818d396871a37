"""Writes small fake NinaPro DB5 files (MAT v5, compressed, the real variable set) for tests.

Layout `s<N>/S<N>_E2_A1.mat` as unzipped from the publisher's s<N>.zip. Each file: exercise 2,
movements 1 and 2, six repetitions each; a repetition is 300 samples of movement then 250 of rest
(3 + 2 windows of 200 with stride 50). `emg` is single holding Myo integers, labels int8 [T, 1].
Subjects 1, 7, 9 give one file per split of the `by_subject` config.

  python data_builders/ninapro_db5/dummy_data/make_dummy_data.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

OUT_DIR = Path(__file__).resolve().parent
MOVE, REST, MOVEMENTS, REPETITIONS = 300, 250, (1, 2), 6
SUBJECTS = (1, 7, 9)


def session(rng: np.random.Generator, subject: int) -> dict:
  stimulus, repetition = [np.zeros(REST, np.int8)], [np.zeros(REST, np.int8)]
  for movement in MOVEMENTS:
    for rep in range(1, REPETITIONS + 1):
      stimulus += [np.full(MOVE, movement, np.int8), np.zeros(REST, np.int8)]
      repetition += [np.full(MOVE, rep, np.int8), np.zeros(REST, np.int8)]
  stimulus, repetition = np.concatenate(stimulus)[:, None], np.concatenate(repetition)[:, None]
  length = stimulus.shape[0]
  emg = np.clip(np.rint(rng.normal(0, 8, (length, 16))), -128, 127).astype(np.float32)
  return {
      "emg": emg, "acc": np.rint(rng.normal(0, 1, (length, 3))).astype(np.float32),
      "glove": np.rint(rng.normal(0, 2, (length, 22))).astype(np.float32),
      "stimulus": stimulus, "restimulus": stimulus, "repetition": repetition,
      "rerepetition": repetition, "subject": np.uint8([[subject]]), "exercise": np.uint8([[2]]),
      "frequency": np.uint8([[200]]), "age": np.uint8([[30]]), "circumference": np.uint8([[25]]),
      "height": np.uint8([[175]]), "weight": np.uint8([[70]]), "gender": "m", "laterality": "r",
      "sensor": "Double Myo"}


def main() -> None:
  rng = np.random.default_rng(2017)
  for subject in SUBJECTS:
    path = OUT_DIR / f"s{subject}" / f"S{subject}_E2_A1.mat"
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, session(rng, subject), do_compression=True, format="5")
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
  main()
