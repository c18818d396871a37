"""TFDS builder for NinaPro DB7: 12 Delsys Trigno IM sensors (2 kHz), 40 movements + rest.

Files `Subject_<N>/S<N>_E<1|2>_A1.mat` (MAT v5; the IMU arrays are not read). Exercise 1 has 17
movements, exercise 2 has 23; classes are 0 = rest, 1..17 (E1), 18..40 (E2). Files numbering E2
as 1..23 and files numbering it 18..40 are both accepted (which one the publisher uses is not
documented). TinyMyo uses DB7 for pretraining (windows 1000 / stride 500).
"""

from __future__ import annotations

import tensorflow_datasets as tfds

from data_builders import emg_common, ninapro


class Builder(ninapro.ClassificationBuilder):
  """NinaPro DB7 movement windows (12 ch, 2 kHz), repetition or subject splits."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "20-450 Hz band-pass + 50 Hz notch at 2 kHz, windows 1000/500."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Download Subject_1.zip ... Subject_22.zip from "
      "https://ninapro.hevs.ch/instructions/DB7.html and unzip each into manual_dir/Subject_<N>/ "
      "(manual_dir/Subject_<N>/S<N>_E<e>_A1.mat).")
  RAW_CHANNELS = 12
  RATE_HZ = 2000.0
  NUM_MOVEMENTS = 40
  EXERCISE_OFFSETS = ((1, 0), (2, 17))
  EXERCISE_SIZES = ((1, 17), (2, 23))
  NUM_CLASSES = 41
  HOMEPAGE = "https://ninapro.hevs.ch/instructions/DB7.html"
  # TinyMyo's scripts/db7.py split by repetition (6 per movement).
  REPETITION_SPLITS = {1: "train", 2: "train", 3: "train", 4: "train", 5: "validation",
                       6: "test"}
  VALIDATION_SUBJECTS = (17, 18)
  TEST_FROM_SUBJECT = 19      # 19-20 intact, 21-22 amputees
  BUILDER_CONFIGS = [
      emg_common.pretraining_config("default", "Repetitions 1-4 train / 5 validation / 6 test."),
      emg_common.pretraining_config(
          "by_subject", "Subjects 1-16 train / 17-18 validation / 19-22 test.", "subject"),
  ]
  DEFAULT_BUILDER_CONFIG_NAME = "default"
