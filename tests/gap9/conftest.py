"""Shared fixtures: a seeded `test`-variant classifier and real UCI-EMG windows."""

import pytest

from export.gap9 import model_io
from export.gap9 import quantize as q
from export.gap9.windows import load_windows
from tinymyo_jax.models.tinymyo import decode_variant


def classifier_config(rope_mode="time", reduction="concat", variant="test"):
  return decode_variant(variant, head="classification", num_channels=8, num_outputs=6,
                        rope_mode=rope_mode, reduction=reduction)


@pytest.fixture(scope="session")
def make_config():
  return classifier_config


# Windows of the UCI sample bundled in the repository (subjects 01 and 20 are byte-identical to
# the full distribution zip's).
@pytest.fixture(scope="session")
def calib_windows():
  return load_windows("train", limit=32, subjects=[1])[0]


@pytest.fixture(scope="session")
def test_windows():
  return load_windows("test", subjects=[20], stride=200)


@pytest.fixture(scope="session", params=[("time", "concat"), ("released", "mean")])
def quantized(request, calib_windows):
  config = classifier_config(*request.param)
  params = model_io.pure_params(config, seed=1)
  return params, config, q.quantize(params, config, calib_windows)
