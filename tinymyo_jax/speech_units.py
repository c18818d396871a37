"""What the speech data and the speech model share: the character tokenizer of the CTC targets
and the frame arithmetic of the model's x8 down-sampling front-end."""

from __future__ import annotations

import unicodedata

CHARSET = "abcdefghijklmnopqrstuvwxyz0123456789|"  # '|' separates words
BLANK = 0  # CTC blank; character CHARSET[i] has id i + 1
NUM_CHAR_CLASSES = len(CHARSET) + 1  # 38
DOWNSAMPLE = 8  # three stride-2 ResBlocks
TASKS = ("recognition", "synthesis")


def normalize_text(text: str) -> str:
  """Lower-cases, strips accents, keeps a-z/0-9, and turns every other run into one space."""
  text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
  text = text.replace("'", "")  # "don't" -> "dont", as punctuation-stripping WER tools do
  kept = "".join(ch if ch in CHARSET[:-1] else " " for ch in text)
  return " ".join(kept.split())


def text_to_ids(text: str) -> list[int]:
  """Normalizes `text` and maps it to ids 1..37 (space -> '|'); no blank (0) is produced."""
  return [CHARSET.index(ch) + 1 for ch in normalize_text(text).replace(" ", "|")]


def ids_to_text(ids) -> str:
  """Maps ids back to text ('|' -> space); blanks (0) are skipped."""
  chars = []
  for i in ids:
    i = int(i)
    if not 0 <= i <= len(CHARSET):
      raise ValueError(f"character id {i} is outside 0..{len(CHARSET)}")
    if i != BLANK:
      chars.append(CHARSET[i - 1])
  return " ".join("".join(chars).replace("|", " ").split())


def output_length(num_samples):
  """Frames after the front-end: ceil(T / 8) (each stride-2 conv gives ceil(T / 2))."""
  for _ in range(3):
    num_samples = (num_samples + 1) // 2
  return num_samples
