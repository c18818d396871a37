"""Writes small fake NinaPro DB8 files (MAT v5, compressed, the real variable set) for tests.

Flat files `S<N>_E1_A<k>.mat` as the publisher serves them. Each file: one movement, 10
repetitions (A1, A2) or 2 (A3); a repetition is 600 samples of movement then 500 of rest, after
a leading 500-sample rest. `emg` single [T, 16] in volts, `acc`/`gyro`/`mag` [T, 48],
`glove` [T, 18] (smooth angles, 0.1 degree grid), labels int8 [T, 1]. S1_E1_A1 has NaN glove
rows 3000-3049 (DB8 files hold NaN glove rows). Subjects 1 (A1), 7 (A2) and 9 (A3) give one file
per `by_subject` split.

  python data_builders/ninapro_db8/dummy_data/make_dummy_data.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

OUT_DIR = Path(__file__).resolve().parent
LEAD, MOVE, REST = 500, 600, 500
FILES = ((1, 1, 10, 1), (7, 2, 10, 5), (9, 3, 2, 9))   # (subject, acquisition, reps, movement)
NAN_ROWS = (1, slice(3000, 3050))


def acquisition(rng: np.random.Generator, subject: int, repetitions: int, movement: int) -> dict:
  stimulus, repetition = [np.zeros(LEAD, np.int8)], [np.zeros(LEAD, np.int8)]
  for rep in range(1, repetitions + 1):
    stimulus += [np.full(MOVE, movement, np.int8), np.zeros(REST, np.int8)]
    repetition += [np.full(MOVE, rep, np.int8), np.zeros(REST, np.int8)]
  stimulus, repetition = np.concatenate(stimulus)[:, None], np.concatenate(repetition)[:, None]
  length = stimulus.shape[0]
  emg = (np.rint(rng.normal(0, 3, (length, 16))) * 1e-6).astype(np.float32)
  phase = np.arange(length)[:, None] / 2000.0 * np.linspace(0.2, 1.0, 18)[None, :]
  glove = np.rint(400 * np.sin(2 * np.pi * phase)) / 10
  imu = np.tile(np.float32([0.0, 0.0, 1.0]), (length, 16))
  return {"emg": emg, "acc": imu, "gyro": np.zeros_like(imu), "mag": imu,
          "glove": glove.astype(np.float32), "stimulus": stimulus, "restimulus": stimulus,
          "repetition": repetition, "rerepetition": repetition,
          "subject": np.uint8([[subject]]), "exercise": np.uint8([[1]])}


def main() -> None:
  rng = np.random.default_rng(2019)
  for subject, take, repetitions, movement in FILES:
    mat = acquisition(rng, subject, repetitions, movement)
    if subject == NAN_ROWS[0]:
      mat["glove"][NAN_ROWS[1]] = np.nan
    path = OUT_DIR / f"S{subject}_E1_A{take}.mat"
    scipy.io.savemat(path, mat, do_compression=True, format="5")
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
  main()
