"""Writes small fake UCI recordings in the publisher's exact text format (run from any folder).

Layout and format copy the unpacked zip: `EMG_data_for_gestures-master/<SS>/<k>_raw_data_*.txt`,
tab-separated, CRLF, header `time channel1..channel8 class`, integer-ms irregular time stamps,
values = Myo int8 x 1e-5 in shortest form, each Myo sample held for ~5 rows (200 Hz armband).
Every gesture run lasts GESTURE_MS[k] ms on the time axis, so the window counts are known exactly:
1100 ms -> 1 window (default and hz200 configs), 1400 ms -> 2 windows. Content is random noise.

  python data_builders/uci_emg/dummy_data/make_dummy_data.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

OUT_DIR = Path(__file__).resolve().parent / "EMG_data_for_gestures-master"
HEADER = "time\t" + "\t".join(f"channel{i}" for i in range(1, 9)) + "\tclass"
GESTURE_MS = (1100, 1400, 1100, 1400, 1100, 1100)   # classes 1..6
UNMARKED_MS = 200
DC_OFFSET_CHANNEL, DC_OFFSET = 7, 40   # channel8 sits 40 units above zero: the band-pass removes it
# (subject, series, cycles through the six gestures, file name) -- split by subject id:
# 01, 02 train; 18 validation; 21 test. Subject 02 has only series 2, as in the real copy.
RECORDINGS = (
    (1, 1, 2, "1_raw_data_10-00_01.03.16.txt"),
    (1, 2, 1, "2_raw_data_10-02_01.03.16.txt"),
    (2, 2, 1, "2_raw_data_11-00_01.03.16.txt"),
    (18, 1, 1, "1_raw_data_12-00_02.03.16.txt"),
    (21, 1, 1, "1_raw_data_13-00_03.03.16.txt"),
)


def class_timeline(cycles: int) -> np.ndarray:
  """Returns the class of every millisecond: 0, 1, 0, 2, ..., 6, 0 repeated `cycles` times."""
  parts = []
  for _ in range(cycles):
    for cls, duration in enumerate(GESTURE_MS, start=1):
      parts += [np.zeros(UNMARKED_MS, np.int64), np.full(duration, cls)]
  parts.append(np.zeros(UNMARKED_MS, np.int64))
  return np.concatenate(parts)


def format_value(units: int) -> str:
  return "0" if units == 0 else repr(float(f"{units}e-5"))


def recording_text(rng: np.random.Generator, cycles: int) -> str:
  """Returns one file's text: rows at irregular ms, each Myo sample held for 5 ms.

  Gaps are 1-4 ms (rarely 10): sparser than the real ~1 ms rows, to keep the files small.
  """
  classes_ms = class_timeline(cycles)
  gaps = rng.choice([1, 2, 3, 4], size=classes_ms.size)
  gaps[rng.random(classes_ms.size) < 0.002] = 10
  times = 1 + np.cumsum(np.concatenate([[0], gaps]))
  # Keep every class boundary as a row so run lengths on the 1 ms grid are exact.
  boundaries = np.flatnonzero(np.diff(classes_ms)) + 2
  times = np.union1d(times[times <= classes_ms.size], boundaries)
  myo = np.clip(np.rint(rng.normal(0, 6, size=(classes_ms.size // 5 + 1, 8))), -128, 127)
  myo[:, DC_OFFSET_CHANNEL] = np.clip(myo[:, DC_OFFSET_CHANNEL] + DC_OFFSET, -128, 127)
  lines = [HEADER]
  for t in times:
    values = myo[(t - 1) // 5].astype(int)
    lines.append("\t".join([str(t), *map(format_value, values), str(classes_ms[t - 1])]))
  return "\r\n".join(lines) + "\r\n"


def main() -> None:
  rng = np.random.default_rng(20160322)
  for subject, _series, cycles, name in RECORDINGS:
    path = OUT_DIR / f"{subject:02d}" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(recording_text(rng, cycles).encode("ascii"))
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
  main()
