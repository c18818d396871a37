"""Writes small fake EMG-EPN-612 user files in the publisher's JSON structure for tests.

Layout as unzipped: `EMG-EPN612 Dataset/{trainingJSON,testingJSON}/user<K>/user<K>.json`, one
object per user with `generalInfo`, `userInfo`, `synchronizationGesture`, `trainingSamples` and
`testingSamples` (`idx_<n>` -> `startPointforGestureExecution`, `myoDetection`, `emg` ch1..ch8
of int8 values, `gyroscope`, `accelerometer`, `quaternion`, and for labelled recordings
`gestureName`, `groundTruth`, `groundTruthIndex`). Real blocks have 150 recordings of ~1000
samples; here blocks are short: training users have 2 recordings per gesture per block, the
testing user 11 per gesture in `trainingSamples` (10 train + 1 test under the TinyMyo split)
and an unlabelled `testingSamples` as in the real corpus. Recordings are 60 samples long
(padded to 1000), except idx_1 of each training block: 1010 (truncated).

  python data_builders/epn612/dummy_data/make_dummy_data.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

OUT_DIR = Path(__file__).resolve().parent / "EMG-EPN612 Dataset"
GESTURES = ("noGesture", "fist", "waveIn", "waveOut", "open", "pinch")
USERS = (("trainingJSON", 1, 2), ("trainingJSON", 10, 2), ("testingJSON", 1, 11))
SHORT, LONG = 60, 1010
CODES = {"waveOut": 1, "waveIn": 2, "fist": 3, "open": 4, "pinch": 5, "noGesture": 6}


def recording(rng: np.random.Generator, gesture: str | None, length: int) -> dict:
  sample = {"startPointforGestureExecution": int(length // 4),
            "myoDetection": [CODES.get(gesture or "noGesture", 6)] * (length // 4),
            "emg": {f"ch{c}": rng.integers(-40, 40, length).tolist() for c in range(1, 9)},
            "gyroscope": {a: rng.integers(-50, 50, length // 4).tolist() for a in "xyz"},
            "accelerometer": {a: np.round(rng.normal(0, 0.3, length // 4), 4).tolist()
                              for a in "xyz"},
            "quaternion": {a: np.round(rng.normal(0, 0.5, length // 4), 4).tolist()
                           for a in "wxyz"}}
  if gesture is not None:
    sample["gestureName"] = gesture
    if gesture != "noGesture":
      begin, end = length // 4, length // 2
      sample["groundTruth"] = [int(begin <= t < end) for t in range(length)]
      sample["groundTruthIndex"] = [begin + 1, end]
  return sample


def block(rng: np.random.Generator, per_gesture: int, labelled: bool) -> dict:
  samples, n = {}, 0
  for gesture in GESTURES:          # grouped by gesture, as in the real files
    for _ in range(per_gesture):
      n += 1
      length = LONG if (n == 1 and labelled) else SHORT
      samples[f"idx_{n}"] = recording(rng, gesture if labelled else None, length)
  return samples


def main() -> None:
  rng = np.random.default_rng(612)
  for group, user, per_gesture in USERS:
    user_json = {
        "generalInfo": {"deviceModel": "Myo Armband", "samplingFrequencyInHertz": 200,
                        "recordingTimeInSeconds": 5, "repetitionsForSynchronizationGesture": 5,
                        "myoPredictionLabel": CODES},
        "userInfo": {"name": f"user{user}", "age": 25, "gender": "man", "handedness": "right",
                     "hasSufferedArmDamage": False, "ethnicGroup": "mestizo",
                     "occupation": "student", "armPerimeterInCm": 26,
                     "fromElbowToMyoInCm": 5, "fromElbowToUlnaInCm": 27,
                     "date": "2019-11-21"},
        "synchronizationGesture": {"samples": {f"idx_{i}": recording(rng, "waveOut", SHORT)
                                               for i in range(1, 6)}},
        "trainingSamples": block(rng, per_gesture, labelled=True),
        "testingSamples": block(rng, 2, labelled=group == "trainingJSON"),
    }
    path = OUT_DIR / group / f"user{user}" / f"user{user}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(user_json, separators=(",", ":")))
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
  main()
