"""Writes a small fake copy of the myo-readings-dataset layout (run from any folder).

  python data_builders/myo_readings/dummy_data/make_dummy_data.py

Layout as published: `myo-readings-dataset/_readings_{right,left}_hand/<id>-<session>/<k>.txt`
plus README.md, LICENSE and curated.txt at the top (ignored by the builder). Rows are
`e1,...,e8,label`, random integers in -1..7 (a DC offset the band-pass removes), two of them at
the int8 extremes. Runs are shorter than the real 5 s so the copy stays small, but their lengths
are fixed, so the window counts are known exactly (see the test):

- `0.txt`: 250 rows of rest -> 2 labeled windows (stride 50), 1 `all` window (stride 100).
- `<k>.txt`: rest 50, gesture 250 (2 windows), rest 20, gesture 200 for k in 1, 2 (1 window) or
  60 otherwise (no window, but repetition 2), then a ragged rest tail of 3..47 rows.

The real files' quirks are reproduced: `11111-0` (a session numbered from 0) is CRLF throughout,
some files end with a line break and some do not, `6666-1` (a four-digit id, left hand) has a
space after each comma, and `50505-2` holds the five kinds of malformed line (MALFORMED).
Participants land in the splits by the hash of their id: 6666 train, 11111 validation, 50505 test
(default config); 50505 validation, the others train (`all`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

OUT_DIR = Path(__file__).resolve().parent / "myo-readings-dataset"
REST_ROWS, GESTURE_ROWS, MID_REST_ROWS = 50, 250, 20
HIBERNATION_ROWS = 250
SECOND_GESTURE_ROWS = {1: 200, 2: 200}     # other gestures: 60 rows
SHORT_SECOND_GESTURE_ROWS = 60
# (hand folder, id, session, line end, after-comma text, ends with a line break for files k in)
SESSIONS = (
    ("_readings_right_hand", "11111", 0, "\r\n", ",", {0, 1, 2, 3, 4, 5, 6, 7}),
    ("_readings_right_hand", "11111", 1, "\n", ",", {0, 5}),
    ("_readings_right_hand", "50505", 2, "\n", ",", {3}),
    ("_readings_left_hand", "6666", 1, "\n", ", ", {2}),
)
# 50505-2: file -> (clean row index, kind). Each kind copies a malformed line of the real files.
MALFORMED = {
    1: (310, "bare_cr_then_truncated"),   # row 310 ends in a lone CR; row 312 is cut to "-108,0"
    2: (60, "two_rows_joined"),           # rows 60 and 61 on one line: 17 fields
    3: (45, "split_11_7"),                # rows 45 and 46 broken as 11 + 7 fields
    4: (280, "split_10_8_comma"),         # 10 fields, then 8 starting with a comma (a value lost)
    7: (20, "dash_field_then_comma"),     # 10 fields with "2-2", then 9 starting with a comma
}
CRLF_FILES_OF_50505 = {1}                  # like the real 64917-2/1.txt, the file is CRLF


def timeline(gesture: int, tail: int) -> np.ndarray:
  """Labels of every row of `<gesture>.txt`."""
  if gesture == 0:
    return np.zeros(HIBERNATION_ROWS, np.int64)
  second = SECOND_GESTURE_ROWS.get(gesture, SHORT_SECOND_GESTURE_ROWS)
  parts = [(0, REST_ROWS), (gesture, GESTURE_ROWS), (0, MID_REST_ROWS), (gesture, second),
           (0, tail)]
  return np.concatenate([np.full(n, label, np.int64) for label, n in parts])


def file_lines(rng: np.random.Generator, gesture: int, tail: int) -> list[str]:
  labels = timeline(gesture, tail)
  samples = rng.integers(-1, 8, size=(labels.size, 8))
  rows = [[*map(str, s), str(label)] for s, label in zip(samples, labels)]
  return [",".join(row) for row in rows]


def corrupt(lines: list[str], row: int, kind: str) -> list[str]:
  """Replaces clean rows from `row` on with the malformed line(s) of `kind`."""
  a, b = lines[row].split(","), lines[row + 1].split(",")
  if kind == "bare_cr_then_truncated":
    return [*lines[:row], lines[row] + "\r" + lines[row + 1], "-108,0", *lines[row + 3:]]
  if kind == "two_rows_joined":
    return [*lines[:row], lines[row] + lines[row + 1], *lines[row + 2:]]
  if kind == "split_11_7":
    both = a + b
    return [*lines[:row], ",".join(both[:11]), ",".join(both[11:]), *lines[row + 2:]]
  if kind == "split_10_8_comma":
    both = a + b[1:]
    return [*lines[:row], ",".join(both[:10]), "," + ",".join(both[10:]), *lines[row + 2:]]
  if kind == "dash_field_then_comma":
    first = [a[0], "2-2", *a[2:], b[0]]
    return [*lines[:row], ",".join(first), "," + ",".join(b[1:]), *lines[row + 2:]]
  raise ValueError(kind)


def write_text(path: Path, lines: list[str], newline: str, comma: str, final: bool) -> None:
  text = newline.join(line.replace(",", comma) for line in lines) + (newline if final else "")
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(text.encode("ascii"))


def main() -> None:
  rng = np.random.default_rng(20210601)
  for index, (hand, participant, session, newline, comma, final) in enumerate(SESSIONS):
    folder = OUT_DIR / hand / f"{participant}-{session}"
    for gesture in range(8):
      lines = file_lines(rng, gesture, tail=3 + 5 * gesture + 3 * index)
      if (participant, session, gesture) == ("11111", 1, 3):
        lines[100] = _extremes(lines[100])
      line_end = newline
      if participant == "50505" and gesture in MALFORMED:
        lines = corrupt(lines, *MALFORMED[gesture])
        if gesture in CRLF_FILES_OF_50505:
          line_end = "\r\n"
      write_text(folder / f"{gesture}.txt", lines, line_end, comma, gesture in final)
  (OUT_DIR / "README.md").write_text("# myo-readings-dataset (fake copy for the builder tests)\n")
  (OUT_DIR / "LICENSE").write_text("MIT License (placeholder of the fake copy)\n")
  (OUT_DIR / "curated.txt").write_text("11111-0\n6666-1")
  size = sum(p.stat().st_size for p in OUT_DIR.rglob("*") if p.is_file())
  print(f"wrote {OUT_DIR} ({size} bytes)")


def _extremes(line: str) -> str:
  """The same row with e1 = -128 and e2 = 127, the int8 limits."""
  fields = line.split(",")
  return ",".join(["-128", "127", *fields[2:]])


if __name__ == "__main__":
  main()
