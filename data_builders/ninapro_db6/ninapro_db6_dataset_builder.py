"""TFDS builder for NinaPro DB6: 14 Delsys electrodes (2 kHz), 7 grasps, 10 sessions per subject.

Files `DB6_s<N>_{a,b}/S<N>_D<day>_T<time>.mat` (MAT v5). `emg` has 16 columns of which 0-based
columns 8 and 9 are empty; they are dropped. Raw grasp labels are 1, 3, 4, 6, 9, 10, 11 (0 = rest)
and become classes 1..7. TinyMyo uses DB6 for pretraining (windows 1000 / stride 500).
"""

from __future__ import annotations

import tensorflow_datasets as tfds

from data_builders import emg_common, ninapro


class Builder(ninapro.ClassificationBuilder):
  """NinaPro DB6 grasp windows (14 ch, 2 kHz): repetition, day or subject splits."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Columns 8-9 dropped, 20-450 Hz band-pass + 50 Hz notch, 1000/500."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Download DB6_s<N>_a.zip and DB6_s<N>_b.zip (N = 1..10) from "
      "https://ninapro.hevs.ch/instructions/DB6.html and unzip them all into manual_dir "
      "(manual_dir/DB6_s<N>_a/S<N>_D<d>_T<t>.mat).")
  RAW_CHANNELS = 16
  DROP_COLUMNS = (8, 9)
  RATE_HZ = 2000.0
  LABEL_VALUES = (0, 1, 3, 4, 6, 9, 10, 11)
  NUM_CLASSES = 8
  TAKES_PER_PART = 2
  HOMEPAGE = "https://ninapro.hevs.ch/instructions/DB6.html"
  # TinyMyo's scripts/db6.py split by repetition (12 per grasp and session).
  REPETITION_SPLITS = {**{r: "train" for r in range(1, 9)}, 9: "validation", 10: "validation",
                       11: "test", 12: "test"}
  DAY_SPLITS = {1: "train", 2: "train", 3: "train", 4: "validation", 5: "test"}
  VALIDATION_SUBJECTS = (7, 8)
  TEST_FROM_SUBJECT = 9
  BUILDER_CONFIGS = [
      emg_common.pretraining_config(
          "default", "Repetitions 1-8 train / 9-10 validation / 11-12 test."),
      emg_common.pretraining_config(
          "by_day", "Days 1-3 train / day 4 validation / day 5 test (between-day).", "day"),
      emg_common.pretraining_config(
          "by_subject", "Subjects 1-6 train / 7-8 validation / 9-10 test.", "subject"),
  ]
  DEFAULT_BUILDER_CONFIG_NAME = "default"
