"""Writes small fake emg2pose sessions in the publisher's HDF5 layout, plus metadata.csv.

Layout copies the extracted tar (`emg2pose_data/<filename>.hdf5` + `metadata.csv`) and the
publisher's test asset: group `emg2pose` with attributes filename/session/stage/user/side/
sample_rate/num_channels/start/end and a contiguous 1-D compound dataset `timeseries` with fields
`time` <f8 (unix s), `joint_angles` <f4 (20,), `emg` <f4 (16,). Values are random noise.
Each session has 2200 samples at 2 kHz -> 3 windows of 1000 with stride 500.

  python data_builders/emg2pose/dummy_data/make_dummy_data.py
"""

from __future__ import annotations

import csv
from pathlib import Path

import h5py
import numpy as np

OUT_DIR = Path(__file__).resolve().parent / "emg2pose_data"
NUM_SAMPLES = 2200
RATE_HZ = 2000.0
DTYPE = np.dtype([("time", "<f8"), ("joint_angles", "<f4", (20,)), ("emg", "<f4", (16,))])
SESSION = "2022-12-06-1670313600-e3096-cv-emg-pose-train@2"
# (user, recording, side, split): user ids are chosen so the by_user hash gives one per split.
SESSIONS = (
    ("0000000000", 1, "left", "train"),
    ("0000000000", 1, "right", "train"),
    ("076a99b44c", 2, "left", "val"),
    ("009e3779b1", 3, "right", "test"),
)
CSV_COLUMNS = ("filename", "user", "session", "stage", "side", "moving_hand", "held_out_user",
               "held_out_stage", "split", "generalization", "start", "end")


def write_session(path: Path, user: str, recording: int, side: str,
                  rng: np.random.Generator) -> dict[str, str]:
  start = 1670313313.0 + 100 * recording
  rows = np.zeros(NUM_SAMPLES, DTYPE)
  rows["time"] = start + np.arange(NUM_SAMPLES) / RATE_HZ
  rows["joint_angles"] = rng.normal(0, 0.3, (NUM_SAMPLES, 20))
  rows["emg"] = rng.normal(0, 1, (NUM_SAMPLES, 16)) + 5.0   # offset: the band-pass removes it
  session = f"{SESSION}-recording-{recording}"
  attrs = {"filename": path.stem, "session": session, "stage": "IndividualFingerPointingSnap_both",
           "user": user, "side": side, "sample_rate": RATE_HZ, "num_channels": np.int64(16),
           "start": start, "end": start + NUM_SAMPLES / RATE_HZ}
  with h5py.File(path, "w") as handle:
    group = handle.create_group("emg2pose")
    group.create_dataset("timeseries", data=rows)
    for key, value in attrs.items():
      group.attrs[key] = value
  return {"filename": path.stem, "user": user, "session": session,
          "stage": attrs["stage"], "side": side, "moving_hand": "both", "held_out_user": "False",
          "held_out_stage": "False", "generalization": "user", "start": str(start),
          "end": str(attrs["end"])}


def main() -> None:
  rng = np.random.default_rng(2024)
  OUT_DIR.mkdir(parents=True, exist_ok=True)
  rows = []
  for user, recording, side, split in SESSIONS:
    path = OUT_DIR / f"{SESSION}-recording-{recording}_{side}.hdf5"
    rows.append({**write_session(path, user, recording, side, rng), "split": split})
  with (OUT_DIR / "metadata.csv").open("w", newline="") as handle:
    writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
  print(f"wrote {len(rows)} sessions and metadata.csv to {OUT_DIR}")


if __name__ == "__main__":
  main()
