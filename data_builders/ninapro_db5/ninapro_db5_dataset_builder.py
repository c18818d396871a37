"""TFDS builder for NinaPro DB5: two Myo armbands (16 channels, 200 Hz), 52 movements + rest.

Files `s<N>/S<N>_E<1|2|3>_A1.mat` (MAT v5). Exercise labels restart at 1 in each file; they are
made global (E2 + 12, E3 + 29) so the classes are 0 = rest and 1..52.
"""

from __future__ import annotations

import tensorflow_datasets as tfds

from data_builders import emg_common, ninapro


class Builder(ninapro.ClassificationBuilder):
  """NinaPro DB5 gesture windows (16 ch, 200 Hz), repetition or subject splits."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "20-90 Hz band-pass + 50 Hz notch at 200 Hz, windows in runs."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Download s1.zip ... s10.zip from https://ninapro.hevs.ch/instructions/DB5.html, unzip them "
      "into manual_dir (manual_dir/s<N>/S<N>_E<e>_A1.mat).")
  RAW_CHANNELS = 16
  RATE_HZ = 200.0
  NUM_MOVEMENTS = 23
  EXERCISE_OFFSETS = ((1, 0), (2, 12), (3, 29))
  NUM_CLASSES = 53
  HOMEPAGE = "https://ninapro.hevs.ch/instructions/DB5.html"
  # TinyMyo's repetition protocol (all subjects pooled).
  REPETITION_SPLITS = {1: "train", 2: "train", 5: "train", 4: "validation", 6: "validation",
                       3: "test"}
  VALIDATION_SUBJECTS = (7, 8)
  TEST_FROM_SUBJECT = 9
  BUILDER_CONFIGS = [
      emg_common.EmgBuilderConfig(
          name="default", description="Repetitions 1,2,5 train / 4,6 validation / 3 test; "
          "window 200 samples (1 s), stride 50.", sample_rate_hz=200.0, window=200, stride=50,
          band_hz=(20.0, 90.0), notch_hz=50.0),
      emg_common.EmgBuilderConfig(
          name="by_subject", description="Subjects 1-6 train / 7-8 validation / 9-10 test.",
          sample_rate_hz=200.0, window=200, stride=50, band_hz=(20.0, 90.0), notch_hz=50.0,
          split_by="subject"),
  ]
  DEFAULT_BUILDER_CONFIG_NAME = "default"
