"""Shared test fixtures: paths, and fast-compile JAX settings for the test process."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FIXTURES = SHARED / "reference" / "official_fixtures"
UCI_ZIP_DIR = SHARED / "data" / "uci_emg"


@pytest.fixture(scope="session")
def repo_root() -> pathlib.Path:
  return REPO


def run_python(args, *, env_extra=None, timeout=600, check=True, **kw):
  """Runs `python args...` from the repo root in a fresh process; returns CompletedProcess."""
  env = dict(os.environ, PYTHONPATH=str(REPO), **(env_extra or {}))
  proc = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=timeout, **kw)
  if check and proc.returncode != 0:
    raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                         f"{proc.stderr[-5000:]}")
  return proc
