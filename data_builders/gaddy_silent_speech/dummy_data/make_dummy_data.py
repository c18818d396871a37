"""Writes a small fake Gaddy & Klein corpus in the publisher's per-utterance layout for tests.

`emg_data/<folder>/<session>/<i>_info.json` + `<i>_emg.npy` (float64 [T, 8]) +
`<i>_audio_clean.wav` (16 kHz int16; the real files are FLAC, which needs `soundfile`).
The two reference-clip info files of `voiced_parallel_data/5-4` (indices 0, 1) and
`closed_vocab/voiced/5-19/598_info.json` are the real files from ../shared/data/gaddy_samples
(byte-identical, no siblings); every other utterance is synthetic, with sentences chosen from the
authors' split files so each split is exercised:

  silent_parallel_data/5-4_silent/0  test sentence             -> test
  silent_parallel_data/5-4_silent/1  dev sentence in both files -> validation
  silent_parallel_data/5-4_silent/2  dev only in largedev       -> train (origdev) / validation
  silent_parallel_data/5-4_silent/3  training sentence          -> train
  voiced_parallel_data/5-4/2         same test sentence, voiced -> nowhere
  voiced_parallel_data/5-4/3         training sentence          -> train
  nonparallel_data/5-11/0            another book's sentence    -> train

  python data_builders/gaddy_silent_speech/dummy_data/make_dummy_data.py
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import scipy.io.wavfile

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "emg_data"
SAMPLES = HERE.parents[2].parent / "shared" / "data" / "gaddy_samples"
SPLITS = HERE.parent / "splits"
BOOK = "books/War_of_the_Worlds.txt"
REAL_INFO = ("voiced_parallel_data/5-4/0_info.json", "voiced_parallel_data/5-4/1_info.json",
             "closed_vocab/voiced/5-19/598_info.json")
EMG_RATE, AUDIO_RATE = 1000, 16000


def sentences() -> dict[str, int]:
  orig = json.loads((SPLITS / "testset_origdev.json").read_text())
  large = json.loads((SPLITS / "testset_largedev.json").read_text())
  orig_dev = {i for _, i in orig["dev"]}
  large_dev = {i for _, i in large["dev"]}
  used = orig_dev | large_dev | {i for _, i in orig["test"]}
  return {"test": orig["test"][0][1], "dev_both": min(orig_dev & large_dev - {
      i for _, i in orig["test"]}), "dev_large": min(large_dev - orig_dev - {
          i for _, i in orig["test"]}), "train": min(set(range(2000)) - used)}


def write_utterance(folder: Path, index: int, book: str, sentence: int, seconds: float,
                    rng: np.random.Generator) -> None:
  folder.mkdir(parents=True, exist_ok=True)
  emg_len, audio_len = int(seconds * EMG_RATE), int(seconds * AUDIO_RATE)
  t = np.arange(emg_len) / EMG_RATE
  emg = rng.normal(0, 20, (emg_len, 8)) + 200 * np.sin(2 * np.pi * 60 * t)[:, None]  # mains hum
  np.save(folder / f"{index}_emg.npy", emg)
  tone = np.sin(2 * np.pi * (300 + 40 * index) * np.arange(audio_len) / AUDIO_RATE)
  audio = np.rint(8000 * tone + rng.normal(0, 200, audio_len)).astype(np.int16)
  scipy.io.wavfile.write(folder / f"{index}_audio_clean.wav", AUDIO_RATE, audio)
  info = {"book": book, "sentence_index": sentence, "text": f"synthetic sentence {sentence}",
          "chunks": [[emg_len, audio_len, emg_len]]}
  (folder / f"{index}_info.json").write_text(json.dumps(info))


def main() -> None:
  rng = np.random.default_rng(2020)
  for relative in REAL_INFO:
    target = OUT_DIR / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SAMPLES / "emg_data" / relative, target)
  chosen = sentences()
  silent = OUT_DIR / "silent_parallel_data" / "5-4_silent"
  voiced = OUT_DIR / "voiced_parallel_data" / "5-4"
  plan = [(silent, 0, BOOK, chosen["test"], 0.6), (silent, 1, BOOK, chosen["dev_both"], 0.5),
          (silent, 2, BOOK, chosen["dev_large"], 0.4), (silent, 3, BOOK, chosen["train"], 0.45),
          (voiced, 2, BOOK, chosen["test"], 0.55), (voiced, 3, BOOK, chosen["train"], 0.5),
          (OUT_DIR / "nonparallel_data" / "5-11", 0, "books/The_Time_Machine.txt", 12, 0.3)]
  for folder, index, book, sentence, seconds in plan:
    write_utterance(folder, index, book, sentence, seconds, rng)
  print(f"wrote {len(plan)} utterances under {OUT_DIR} (sentences {chosen})")


if __name__ == "__main__":
  main()
