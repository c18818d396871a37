"""Writes small fake NinaPro DB7 files (MAT v5, compressed, the real variable set) for tests.

Layout as unzipped from the publisher's `Subject_<N>.zip`: `Subject_<N>/S<N>_E<e>_A1.mat`. Each
file: two movements, six repetitions each; a repetition is 1000 samples of movement then 1000 of
rest (one 1000-sample window each), after a leading 1000-sample rest. `emg` single [T, 12] in
volts; `acc`, `gyro`, `mag` [T, 36]; labels int8 [T, 1]. Subject 1 (E2, labels 1, 2), 17 (E1,
labels 1, 2) and 19 (E2 numbered across exercises: 18, 19) give one file per `by_subject` split
and cover both label numberings the builder accepts.

  python data_builders/ninapro_db7/dummy_data/make_dummy_data.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

OUT_DIR = Path(__file__).resolve().parent
MOVE, REST, REPETITIONS = 1000, 1000, 6
FILES = ((1, 2, (1, 2)), (17, 1, (1, 2)), (19, 2, (18, 19)))   # (subject, exercise, labels)


def session(rng: np.random.Generator, subject: int, exercise: int, movements) -> dict:
  stimulus, repetition = [np.zeros(REST, np.int8)], [np.zeros(REST, np.int8)]
  for movement in movements:
    for rep in range(1, REPETITIONS + 1):
      stimulus += [np.full(MOVE, movement, np.int8), np.zeros(REST, np.int8)]
      repetition += [np.full(MOVE, rep, np.int8), np.zeros(REST, np.int8)]
  stimulus, repetition = np.concatenate(stimulus)[:, None], np.concatenate(repetition)[:, None]
  length = stimulus.shape[0]
  emg = (np.rint(rng.normal(0, 3, (length, 12))) * 1e-6 - 1e-5).astype(np.float32)
  imu = np.tile(np.float32([0.0, 0.0, 1.0]), (length, 12))
  return {"emg": emg, "acc": imu, "gyro": np.zeros_like(imu), "mag": imu,
          "stimulus": stimulus, "restimulus": stimulus, "repetition": repetition,
          "rerepetition": repetition, "subject": np.uint8([[subject]]),
          "exercise": np.uint8([[exercise]])}


def main() -> None:
  rng = np.random.default_rng(2017)
  for subject, exercise, movements in FILES:
    path = OUT_DIR / f"Subject_{subject}" / f"S{subject}_E{exercise}_A1.mat"
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, session(rng, subject, exercise, movements), do_compression=True,
                     format="5")
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
  main()
