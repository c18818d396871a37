"""Writes a small fake MyoDisCo in the publisher's layout and formats (run from any folder).

`MyoDisCo/S<n>/{day1,day2,positions/<p>}/R_<rep>_C_<class>_EMG.csv`: no header, 8 integer
columns, CRLF line ends; a `metadata.json` beside the files. Four people, eight files each (two
per day, one per position), with the real copy's quirks:
  - row counts around 400 (352 to 426): 399 rows give one window fewer than 400;
  - S1/day2 has no metadata.json;
  - S4/day1's metadata.json lists an 11-class scheme (single_tap at 7, z_rest at 10) and
    entries for C_10 files that do not exist; the files follow the 10-class names;
  - S10's metadata.json paths name participant S11 (the publisher's own numbering);
  - positions hold reps 0..4 only and their metadata paths say Day2;
  - values saturate at the int8 limits now and then; channel 8 sits 40 units above zero.
One position file of S10 is 150 rows, shorter than one window (it gives no window). Content is
random noise.

  python data_builders/myodisco/dummy_data/make_dummy_data.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

OUT_DIR = Path(__file__).resolve().parent / "MyoDisCo"
CLASS_NAMES = ("double_tap", "extension", "finger_gun", "flexion", "hand_close", "hand_open",
               "point", "snap", "thumbs_up", "z_rest")
ELEVEN_CLASSES = CLASS_NAMES[:7] + ("single_tap",) + CLASS_NAMES[7:]
SETTINGS = {"continuous": False, "randomize": False, "gifs": False}
OFFSET_CHANNEL, OFFSET = 7, 40
# {subject: {folder: [(rep, class, rows), ...]}}
FILES = {
    1: {"day1": [(0, 0, 400), (16, 1, 399)], "day2": [(3, 2, 404), (19, 3, 352)],
        "positions/1": [(0, 4, 400)], "positions/2": [(1, 5, 402)],
        "positions/3": [(2, 6, 404)], "positions/4": [(4, 7, 426)]},
    4: {"day1": [(5, 7, 400), (17, 8, 404)], "day2": [(2, 9, 400), (18, 0, 398)],
        "positions/1": [(3, 1, 400)], "positions/2": [(0, 2, 352)],
        "positions/3": [(4, 3, 400)], "positions/4": [(2, 8, 402)]},
    5: {"day1": [(15, 9, 404), (18, 2, 400)], "day2": [(0, 4, 400), (16, 5, 426)],
        "positions/1": [(1, 6, 400)], "positions/2": [(2, 7, 399)],
        "positions/3": [(3, 8, 400)], "positions/4": [(0, 9, 404)]},
    10: {"day1": [(1, 3, 402), (19, 4, 400)], "day2": [(15, 6, 400), (17, 7, 400)],
         "positions/1": [(4, 0, 404)], "positions/2": [(3, 1, 400)],
         "positions/3": [(1, 2, 400)], "positions/4": [(0, 5, 150)]},
}
NO_METADATA = {(1, "day2")}
ELEVEN_CLASS_METADATA = {(4, "day1")}


def csv_text(rng: np.random.Generator, rows: int) -> str:
  """One file: int8-range noise, channel 8 offset, a few saturated samples."""
  emg = np.rint(rng.normal(0.0, 4.0, size=(rows, 8)))
  emg[:, OFFSET_CHANNEL] += OFFSET
  saturated = rng.random((rows, 8)) < 0.002
  emg[saturated] = rng.choice([-128, 127], size=int(saturated.sum()))
  emg = np.clip(emg, -128, 127).astype(int)
  return "".join(",".join(map(str, row)) + "\r\n" for row in emg)


def metadata_prefix(subject: int, folder: str) -> str:
  """The publisher's recording path; people from S10 on were numbered one higher there."""
  person = subject + 1 if subject >= 10 else subject
  if folder == "day1":
    return f"data/S{person}/SGT/static"
  if folder == "day2":
    return f"data/S{person}/Day2/SGT/static"
  return f"data/S{person}/Day2/SGT/Confounding/Pos/static/{folder.split('/')[1]}"


def metadata_text(subject: int, folder: str, files: list[tuple[int, int, int]]) -> str:
  table: dict = dict(SETTINGS)
  prefix = metadata_prefix(subject, folder)
  names = ELEVEN_CLASSES if (subject, folder) in ELEVEN_CLASS_METADATA else CLASS_NAMES
  listed = [(rep, cls) for rep, cls, _ in files]
  if (subject, folder) in ELEVEN_CLASS_METADATA:
    listed += [(rep, 10) for rep, _, _ in files]      # C_10 entries without a file
  for rep, cls in sorted(listed):
    table[f"{prefix}/R_{rep}_C_{cls}_EMG.csv"] = {
        "rep_idx": rep, "class_idx": cls, "class_name": names[cls], "file_type": "png"}
  return json.dumps(table)


def main() -> None:
  rng = np.random.default_rng(20240501)
  for subject, folders in FILES.items():
    for folder, files in folders.items():
      path = OUT_DIR / f"S{subject}" / folder
      path.mkdir(parents=True, exist_ok=True)
      for rep, cls, rows in files:
        (path / f"R_{rep}_C_{cls}_EMG.csv").write_bytes(csv_text(rng, rows).encode("ascii"))
      if (subject, folder) not in NO_METADATA:
        (path / "metadata.json").write_text(metadata_text(subject, folder, files))
  total = sum(p.stat().st_size for p in OUT_DIR.rglob("*") if p.is_file())
  print(f"wrote {OUT_DIR} ({total} bytes)")


if __name__ == "__main__":
  main()
