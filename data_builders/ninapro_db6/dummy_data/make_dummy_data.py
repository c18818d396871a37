"""Writes small fake NinaPro DB6 files (MAT v5, compressed, the real variable set) for tests.

Layout as unzipped from the publisher's zips: `DB6_s<N>_a/` holds days 1-3, `DB6_s<N>_b/` days
4-5, files `S<N>_D<day>_T<time>.mat`, plus a stray `.DS_Store` as in the real zips. Each file: raw
grasp 3 (subjects 1, 9) or 11 (subject 7), 12 repetitions; a repetition is 1000 samples of grasp
then 1000 of rest (one 1000-sample window each), after a leading 1000-sample rest. `emg` is single
[T, 16] in volts with columns 8 and 9 all zero; label vectors are 3 samples shorter than `emg`
(a DB6 quirk).
Subjects 1 (day 1 am), 7 (day 4 pm) and 9 (day 5 am) give one file per split of `by_subject`.

  python data_builders/ninapro_db6/dummy_data/make_dummy_data.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

OUT_DIR = Path(__file__).resolve().parent
MOVE, REST, REPETITIONS = 1000, 1000, 12
FILES = ((1, 1, 1, 3), (7, 4, 2, 11), (9, 5, 1, 3))   # (subject, day, time, raw grasp label)
SHORT_LABELS = 3


def session(rng: np.random.Generator, subject: int, day: int, time: int, grasp: int) -> dict:
  stimulus, repetition = [np.zeros(REST, np.int8)], [np.zeros(REST, np.int8)]
  for rep in range(1, REPETITIONS + 1):
    stimulus += [np.full(MOVE, grasp, np.int8), np.zeros(REST, np.int8)]
    repetition += [np.full(MOVE, rep, np.int8), np.zeros(REST, np.int8)]
  stimulus, repetition = np.concatenate(stimulus)[:, None], np.concatenate(repetition)[:, None]
  length = stimulus.shape[0]
  # Volts on a 1 uV grid so the compressed file stays small; +20 uV offset for the band-pass.
  emg = (np.rint(rng.normal(0, 3, (length, 16))) * 1e-6 + 2e-5).astype(np.float32)
  emg[:, 8:10] = 0
  objects = np.where(stimulus > 0, 2, 0).astype(np.int8)
  labels = {"stimulus": stimulus, "restimulus": stimulus, "repetition": repetition,
            "rerepetition": repetition, "repetition_object": repetition, "object": objects,
            "reobject": objects}
  acc = np.tile(np.float32([0.0, 0.0, 1.0]), (length, 16))    # resting sensors: gravity only
  return {"emg": emg, "acc": acc,
          **{k: v[:length - SHORT_LABELS] for k, v in labels.items()},
          "subj": np.uint8([[subject]]), "daytesting": np.uint8([[day]]),
          "time": np.uint8([[time]])}


def main() -> None:
  rng = np.random.default_rng(2017)
  for subject, day, time, grasp in FILES:
    folder = OUT_DIR / f"DB6_s{subject}_{'a' if day <= 3 else 'b'}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    path = folder / f"S{subject}_D{day}_T{time}.mat"
    scipy.io.savemat(path, session(rng, subject, day, time, grasp), do_compression=True, format="5")
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
  main()
