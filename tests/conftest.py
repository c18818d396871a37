"""Shared test fixtures: paths, shared-data skips, and one compilation cache for the whole run."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"  # reference files and data kept beside the repository
FIXTURES = SHARED / "reference" / "official_fixtures"
UCI_SAMPLE_ZIP = REPO / "data_builders" / "uci_emg" / "sample" / "EMG_data_for_gestures.zip"
# Set (e.g. in CI, which keeps ../shared) to fail instead of skipping when shared files are absent.
REQUIRE_SHARED = os.environ.get("TINYMYO_REQUIRE_SHARED", "") not in ("", "0")
# Most tests compile the same small models' steps, many in fresh processes: one persistent XLA
# cache for the run (every pytest-xdist worker and every subprocess inherits it through the
# environment) compiles each program once. Set JAX_COMPILATION_CACHE_DIR to keep one across runs.
CACHE_SETTINGS = {"JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                  "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
# The tests' programs are small and compile time dominates their run time: they compile with
# most XLA optimizations off (about a third less time for a CLI training test here). Set
# JAX_DISABLE_MOST_OPTIMIZATIONS=0 to run the suite on the optimizing compiler path.
COMPILER_SETTINGS = {"JAX_DISABLE_MOST_OPTIMIZATIONS": "1"}


def pytest_configure(config):
  if "JAX_COMPILATION_CACHE_DIR" not in os.environ:  # the controller; workers inherit it
    config._jax_cache_dir = tempfile.mkdtemp(prefix="tinymyo-test-xla-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = config._jax_cache_dir
  for name, value in {**CACHE_SETTINGS, **COMPILER_SETTINGS}.items():
    os.environ.setdefault(name, value)
  if "jax" in sys.modules:  # imported before this hook (a plugin): its flags are read already
    import jax
    jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
    for name in CACHE_SETTINGS:
      jax.config.update(name.lower(), int(os.environ[name]))
    if "jax._src.compiler" in sys.modules:  # defines the flag, reading its variable once
      for name in COMPILER_SETTINGS:
        jax.config.update(name.lower(), os.environ[name] not in ("", "0"))


def pytest_unconfigure(config):
  cache = getattr(config, "_jax_cache_dir", None)
  if cache:
    shutil.rmtree(cache, ignore_errors=True)


def need_shared(path) -> pathlib.Path:
  """`path` (under ../shared); skips the test, naming the missing folder, when it is absent."""
  path = pathlib.Path(path)
  if not path.exists():
    missing = path
    while not missing.parent.exists():
      missing = missing.parent
    reason = f"needs {path}, but {missing} does not exist (shared data outside the repository)"
    if REQUIRE_SHARED:
      pytest.fail(f"TINYMYO_REQUIRE_SHARED is set: {reason}")
    pytest.skip(reason)
  return path


@pytest.fixture(scope="session")
def repo_root() -> pathlib.Path:
  return REPO


@pytest.fixture
def spawn():
  """`spawn(cmd, **popen_kwargs)` starts a background process for this test; whatever is still
  running when the test ends (an assertion or a timeout included) is killed and reaped."""
  started: list[subprocess.Popen] = []

  def start(cmd, **kw) -> subprocess.Popen:
    started.append(subprocess.Popen(cmd, **kw))
    return started[-1]

  yield start
  for proc in started:
    if proc.poll() is None:
      proc.kill()
    proc.wait(timeout=60)


def run_python(args, *, env_extra=None, timeout=600, check=True, **kw):
  """Runs `python args...` from the repo root in a fresh process; returns CompletedProcess."""
  env = dict(os.environ, PYTHONPATH=str(REPO), **(env_extra or {}))
  proc = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=timeout, **kw)
  if check and proc.returncode != 0:
    raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                         f"{proc.stderr[-5000:]}")
  return proc
