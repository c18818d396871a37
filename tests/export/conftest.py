"""Fixtures for the export tests: official fixture paths and imported checkpoints."""

from __future__ import annotations

import pathlib

import pytest

from tests.conftest import FIXTURES, need_shared

PRETRAIN_ST = FIXTURES / "tinymyo_pretrain_seed0.safetensors"
CLASSIFIER_ST = FIXTURES / "tinymyo_classifier_seed0.safetensors"


def need(path: pathlib.Path) -> pathlib.Path:
  """Skips the test when a shared reference file is absent (e.g. in a public clone)."""
  return need_shared(path)


@pytest.fixture(scope="session")
def pretrain_ckpt(tmp_path_factory) -> str:
  """The official pretraining fixture imported into a checkpoint directory."""
  from export.import_torch import import_safetensors

  out = tmp_path_factory.mktemp("imports") / "pretrain"
  import_safetensors(str(need(PRETRAIN_ST)), str(out))
  return str(out)


@pytest.fixture(scope="session")
def classifier_ckpt(tmp_path_factory) -> str:
  """The official 8-channel, 6-class classifier fixture imported into a checkpoint directory."""
  from export.import_torch import import_safetensors

  out = tmp_path_factory.mktemp("imports") / "classifier"
  import_safetensors(str(need(CLASSIFIER_ST)), str(out))
  return str(out)
