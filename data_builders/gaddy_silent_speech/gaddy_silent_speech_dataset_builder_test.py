"""Tests of the Gaddy silent-speech builder: authors' splits, variable lengths, MFCC, bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io.wavfile

from data_builders import testing
from data_builders.gaddy_silent_speech import mfcc as mfcc_lib

HERE = Path(__file__).resolve().parent
DUMMY_DIR = HERE / "dummy_data"
SPLITS = testing.SPLITS


def _texts(records):
  return sorted(r["transcript"].decode() if isinstance(r["transcript"], bytes)
                else r["transcript"] for r in records)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  return testing.build_and_read("gaddy_silent_speech", DUMMY_DIR,
                                tmp_path_factory.mktemp("gaddy"))


def test_origdev_splits_follow_the_authors_rules(built):
  builder, records = built
  # 522 is a test sentence (silent copy -> test, voiced copy dropped); 411 is dev in both files;
  # 2 is dev only in largedev; 0 and the other book's 12 are training sentences.
  assert {s: _texts(records[s]) for s in SPLITS} == {
      "train": ["synthetic sentence 0", "synthetic sentence 0", "synthetic sentence 12",
                "synthetic sentence 2"],
      "validation": ["synthetic sentence 411"], "test": ["synthetic sentence 522"]}
  assert {int(r["subject"]) for s in SPLITS for r in records[s]} == {0}   # one speaker
  assert dict(builder.info.metadata) == {
      "sample_rate_hz": 1000.0, "num_channels": 8, "window": 0, "stride": 0,
      "mfcc_hop_s": 0.01, "mfcc_frame_s": 0.025, "utterances": 7, "reference_clips_skipped": 2,
      "voiced_copies_of_eval_sentences": 1}


def test_largedev_moves_its_dev_sentence(tmp_path):
  builder, records = testing.build_and_read("gaddy_silent_speech", DUMMY_DIR, tmp_path,
                                            config="largedev")
  assert _texts(records["validation"]) == ["synthetic sentence 2", "synthetic sentence 411"]
  assert builder.info.splits["train"].num_examples == 3


def test_lengths_mfcc_frames_and_filtering(built):
  _, records = built
  (record,) = records["test"]
  assert record["emg"].shape == (8, 600) and record["emg"].dtype == np.float32
  assert record["mfcc"].shape == (mfcc_lib.num_frames(9600, 16000), 26) == (58, 26)
  raw = np.load(DUMMY_DIR / "emg_data/silent_parallel_data/5-4_silent/0_emg.npy").T
  hum = lambda x: np.abs(np.fft.rfft(x[:, 100:500], axis=1))[:, 24].mean()   # 60 Hz bin
  # A Q-30 notch rings for ~0.2 s, so a 0.6 s utterance keeps some hum near its ends.
  assert hum(record["emg"]) < 0.15 * hum(raw)
  rate, audio = scipy.io.wavfile.read(
      DUMMY_DIR / "emg_data/silent_parallel_data/5-4_silent/0_audio_clean.wav")
  np.testing.assert_allclose(record["mfcc"], mfcc_lib.mfcc(audio / 32768.0, rate), atol=1e-5)


def test_mfcc_matches_a_direct_per_frame_computation():
  rng = np.random.default_rng(0)
  rate = 16000
  audio = np.sin(2 * np.pi * 440 * np.arange(4000) / rate) + 0.1 * rng.normal(size=4000)
  got = mfcc_lib.mfcc(audio, rate)
  emphasised = np.append(audio[0], audio[1:] - 0.97 * audio[:-1])
  bank = mfcc_lib.mel_filterbank(rate, 512)
  n = np.arange(40)
  dct = np.sqrt(2 / 40) * np.cos(np.pi * (n[None, :] + 0.5) * np.arange(26)[:, None] / 40)
  dct[0] /= np.sqrt(2)
  assert got.shape == (1 + (4000 - 400) // 160, 26)
  for f in range(got.shape[0]):
    frame = emphasised[160 * f:160 * f + 400] * np.hanning(400)
    power = np.abs(np.fft.rfft(frame, 512)) ** 2
    np.testing.assert_allclose(got[f], dct @ np.log(bank @ power), rtol=1e-4, atol=1e-3)
  # 440 Hz lies in one mel band: its filter's peak sits at the band centre.
  centres = mfcc_lib.mel_to_hz(np.linspace(0, mfcc_lib.hz_to_mel(8000), 42))[1:-1]
  assert np.argmax(bank @ (np.abs(np.fft.rfft(np.hanning(400) * audio[:400], 512)) ** 2)) == \
      int(np.argmin(np.abs(centres - 440)))


@pytest.fixture()
def manual(tmp_path):
  shutil.copytree(DUMMY_DIR / "emg_data", tmp_path / "manual" / "emg_data")
  root = tmp_path / "manual"
  return root, root / "emg_data" / "silent_parallel_data" / "5-4_silent"


@pytest.mark.parametrize("damage, problem", [
    ("flac", "reading FLAC needs the Python package 'soundfile'"),
    ("no_audio", "no clean audio"),
    ("channels", r"emg has shape \(600, 6\), expected \(T, 8\)"),
    ("nan", "non-finite"),
    ("truncate", "unreadable .npy"),
    ("info", "not an utterance info file"),
])
def test_bad_input_names_the_file(manual, tmp_path, damage, problem):
  root, session = manual
  if damage in ("flac", "no_audio"):
    wav = session / "0_audio_clean.wav"
    if damage == "flac":
      try:
        import soundfile  # noqa: F401
        pytest.skip("soundfile is installed: FLAC is readable")
      except ImportError:
        pass
      wav.rename(session / "0_audio_clean.flac")
    else:
      wav.unlink()
  elif damage == "info":
    (session / "0_info.json").write_text('{"book": "x"}')
  else:
    emg = np.load(session / "0_emg.npy")
    if damage == "channels":
      np.save(session / "0_emg.npy", emg[:, :6])
    elif damage == "nan":
      emg[3, 3] = np.nan
      np.save(session / "0_emg.npy", emg)
    else:
      (session / "0_emg.npy").write_bytes((session / "0_emg.npy").read_bytes()[:1000])
  testing.assert_build_fails("gaddy_silent_speech", root, tmp_path / "tfds", problem,
                             "5-4_silent/0")
