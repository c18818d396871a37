"""Writes a small fake CIILData/ folder in the publisher's exact layout (run from any folder).

Layout and format copy the real archive: `ElectrodeShift/subject<k>/{training,trial_<t>}/` and
`MinimalTrainingData/subject<k>/{train,test/trial_<t>}/` holding `R_<rep>_C_<class>.csv` files
(headerless, 8 integer fields per line, CRLF, a final CRLF) and a `metadata.json` per session
folder except MinimalTrainingData's `train/`. Quirks of the real copy kept here: a 190-line
training file (too short for one window), MinimalTrainingData train files of exactly 200 lines
(one window each), an ElectrodeShift `trial_0/` that only some people have, the game logs
`game_data_<n><time>.txt` / `game_stats<time>.txt` of MinimalTrainingData subject10 (not EMG),
metadata.json keys naming "subject<k+1>" for MinimalTrainingData subjects from 4 on, and samples
at both ends of the int8 range. Content is random noise; channel 8 sits 40 units above zero.

People: ElectrodeShift subject9 and MinimalTrainingData subject10 fall in the `all` config's
validation group, ElectrodeShift subject13 and MinimalTrainingData subject0 in its train group.

  python data_builders/ciil/dummy_data/make_dummy_data.py
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

OUT_DIR = Path(__file__).resolve().parent / "CIILData"
CLASS_NAMES = ("Hand_Close", "Hand_Open", "No_Motion", "Wrist_Extension", "Wrist_Flexion")
DC_OFFSET_CHANNEL, DC_OFFSET = 7, 40
# (group, subject, session folder) -> {(rep, class): number of lines}
FILES = {
    ("ElectrodeShift", 9, "training"): {
        (0, 0): 250, (0, 1): 250, (0, 2): 250, (0, 3): 250, (0, 4): 300,
        (1, 0): 250, (1, 1): 200, (1, 2): 190, (1, 3): 250, (1, 4): 250},
    ("ElectrodeShift", 9, "trial_1"): {(0, 0): 250},
    ("ElectrodeShift", 9, "trial_2"): {(1, 1): 300},
    ("ElectrodeShift", 9, "trial_3"): {(0, 2): 250},
    ("ElectrodeShift", 9, "trial_4"): {(0, 4): 250},
    ("ElectrodeShift", 13, "training"): {
        (0, 0): 250, (1, 0): 200, (2, 0): 250, (0, 3): 250, (1, 3): 300},
    ("ElectrodeShift", 13, "trial_0"): {(0, 0): 250, (0, 1): 250},
    ("ElectrodeShift", 13, "trial_1"): {(0, 3): 250},
    ("ElectrodeShift", 13, "trial_2"): {(0, 4): 250},
    ("ElectrodeShift", 13, "trial_3"): {(1, 0): 349},
    ("ElectrodeShift", 13, "trial_4"): {(0, 1): 200},
    ("MinimalTrainingData", 0, "train"): {(0, c): 200 for c in range(5)},
    ("MinimalTrainingData", 0, "test/trial_0"): {(0, 1): 250, (1, 1): 250, (2, 4): 300},
    ("MinimalTrainingData", 0, "test/trial_1"): {(0, 0): 250},
    ("MinimalTrainingData", 0, "test/trial_2"): {(1, 1): 250},
    ("MinimalTrainingData", 0, "test/trial_3"): {(0, 2): 250},
    ("MinimalTrainingData", 0, "test/trial_4"): {(0, 3): 250},
    ("MinimalTrainingData", 0, "test/trial_5"): {(1, 4): 250},
    ("MinimalTrainingData", 0, "test/trial_6"): {(0, 2): 202},
    ("MinimalTrainingData", 10, "train"): {(0, 0): 200, (0, 2): 200},
    ("MinimalTrainingData", 10, "test/trial_0"): {(0, 3): 250},
    **{("MinimalTrainingData", 10, f"test/trial_{t}"): {(0, t % 5): 250} for t in range(1, 7)},
}
GAME_LOG_TIMES = {1: ("0", "2023-01-24T16-06-03Z"), 2: ("0", "2023-01-24T16-12-06Z"),
                  3: ("1", "2023-01-24T15-54-24Z"), 4: ("2", "2023-01-24T16-17-52Z"),
                  5: ("3", "2023-01-24T16-00-23Z"), 6: ("4", "2023-01-24T16-23-05Z")}
EXTREME_FILE = ("ElectrodeShift", 9, "trial_1", (0, 0))   # holds -128 and 127


def csv_text(rng: np.random.Generator, lines: int, extremes: bool) -> str:
  """Returns one file: `lines` rows of 8 int8 values, comma-separated, CRLF-terminated."""
  samples = np.rint(rng.normal(0.0, 2.5, size=(lines, 8)))
  samples[:, DC_OFFSET_CHANNEL] += DC_OFFSET
  if extremes:
    samples[lines // 2, 0], samples[lines // 2 + 1, 0] = -128, 127
  samples = np.clip(samples, -128, 127).astype(int)
  return "".join(",".join(map(str, row)) + "\r\n" for row in samples)


def metadata_text(group: str, subject: int, session: str, files: dict) -> str:
  """Returns a session's metadata.json: recorder settings, then one entry per file."""
  named = subject + 1 if group == "MinimalTrainingData" and subject >= 4 else subject
  folder = session.rsplit("/", 1)[-1]
  entries: dict = {"continuous": False, "randomize": False, "gifs": False}
  for rep, cls in sorted(files):
    entries[f"data/subject{named}/sgt/{folder}/R_{rep}_C_{cls}.csv"] = {
        "rep_idx": rep, "class_idx": cls, "class_name": CLASS_NAMES[cls], "file_type": "png"}
  return json.dumps(entries)


def game_logs(folder: Path, trial: int) -> None:
  """Writes the two game logs that sit beside some MinimalTrainingData test trials."""
  number, stamp = GAME_LOG_TIMES[trial]
  rows = ",(960.0, 540.0, 0.0),(499.2, 349.7, 0.0)\n" * 12
  (folder / f"game_data_{number}{stamp}.txt").write_text(rows)
  (folder / f"game_stats{stamp}.txt").write_text(
      "Targets_Acquired: 4\nOvershoots: 2\nTimes: 20.1 12.5 30.2 9.8 \nScore: 300\n")


def main() -> None:
  rng = np.random.default_rng(20230124)
  shutil.rmtree(OUT_DIR, ignore_errors=True)
  for (group, subject, session), files in FILES.items():
    folder = OUT_DIR / group / f"subject{subject}" / session
    folder.mkdir(parents=True)
    for (rep, cls), lines in sorted(files.items()):
      extremes = (group, subject, session, (rep, cls)) == EXTREME_FILE
      (folder / f"R_{rep}_C_{cls}.csv").write_bytes(
          csv_text(rng, lines, extremes).encode("ascii"))
    if session != "train":
      (folder / "metadata.json").write_text(metadata_text(group, subject, session, files))
    if group == "MinimalTrainingData" and subject == 10 and session.startswith("test/trial_"):
      trial = int(session.rsplit("_", 1)[1])
      if trial in GAME_LOG_TIMES:
        game_logs(folder, trial)
  size = sum(p.stat().st_size for p in OUT_DIR.rglob("*") if p.is_file())
  print(f"wrote {OUT_DIR} ({size} bytes)")


if __name__ == "__main__":
  main()
