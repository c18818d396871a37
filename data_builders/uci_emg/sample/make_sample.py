"""Copies ten subjects of the UCI zip into the bundled sample `EMG_data_for_gestures.zip`.

Subjects 01, 03-07 (train), 17, 18 (validation), 20, 21 (test), both series each, plus the
authors' README.txt; member names and times are kept, so the sample has the real zip's layout.

  python data_builders/uci_emg/sample/make_sample.py [--source PATH_TO_FULL_ZIP]
"""

from __future__ import annotations

import argparse
import os
import re
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = (HERE.parents[2].parent / "shared" / "data" / "uci_emg"
                  / "EMG_data_for_gestures.zip")
SUBJECTS = ("01", "03", "04", "05", "06", "07", "17", "18", "20", "21")
MAX_BYTES = 5_000_000


def wanted(member: str) -> bool:
  if member.endswith("/README.txt"):
    return True
  match = re.search(r"/(\d{2})/[12]_raw_data_[^/]*\.txt$", member)
  return bool(match) and match[1] in SUBJECTS


def make_sample(source: Path, target: Path) -> int:
  """Writes the sample zip atomically (temp file + rename); returns its size in bytes."""
  partial = target.with_suffix(".zip.partial")
  with zipfile.ZipFile(source) as src, zipfile.ZipFile(
      partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
    members = [info for info in src.infolist() if wanted(info.filename)]
    expected = 1 + 2 * len(SUBJECTS)
    if len(members) != expected:
      raise ValueError(f"{source}: found {len(members)} of the {expected} sample members")
    for info in members:
      dst.writestr(info, src.read(info), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
  size = partial.stat().st_size
  if size > MAX_BYTES:
    partial.unlink()
    raise ValueError(f"sample zip would be {size} bytes, over the {MAX_BYTES}-byte budget")
  os.replace(partial, target)
  return size


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
  args = parser.parse_args()
  target = HERE / "EMG_data_for_gestures.zip"
  print(f"wrote {target} ({make_sample(args.source.resolve(), target)} bytes)")


if __name__ == "__main__":
  main()
