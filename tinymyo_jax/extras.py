"""Optional extras: which extra provides a package, and one-line errors when it is missing.

The core install (`pip install tinymyo-jax`) imports, builds data and trains. Export, Beam
builds and the scikit-learn estimators need an extra; where one is missing, the message names
it instead of ending in a traceback.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from types import ModuleType

# Top-level package -> the extra (pyproject.toml [project.optional-dependencies]) that installs it.
PROVIDED_BY = {
    "torch": "export", "safetensors": "export", "onnx": "export", "onnxruntime": "export",
    "onnxscript": "export", "sklearn": "sklearn", "apache_beam": "beam",
}


class MissingExtraError(ImportError):
  """A package of an optional extra is not installed."""


def install_hint(package: str) -> str:
  extra = PROVIDED_BY[package]
  return (f"it comes with the {extra!r} extra: pip install 'tinymyo-jax[{extra}]' "
          f"(in a clone: pip install -e '.[{extra}]')")


def _extra_package(error: ModuleNotFoundError) -> str | None:
  """The extra-provided package whose absence raised `error`, or None for any other module."""
  package = (error.name or "").split(".")[0]
  return package if package in PROVIDED_BY else None


def require(module: str, purpose: str) -> ModuleType:
  """Imports `module` (of an extra's package), or raises MissingExtraError naming the extra."""
  try:
    return importlib.import_module(module)
  except ModuleNotFoundError as e:
    package = _extra_package(e)
    if package is None:
      raise
    raise MissingExtraError(f"{purpose} needs {package!r}, which is not installed; "
                            f"{install_hint(package)}") from e


def run_cli(main: Callable[[], int | None]) -> int:
  """Runs a command-line `main`; a missing extra's package ends it with one line, exit 1."""
  try:
    return main() or 0
  except MissingExtraError as e:
    print(f"error: {e}", file=sys.stderr)
  except ModuleNotFoundError as e:
    package = _extra_package(e)
    if package is None:
      raise
    print(f"error: {package!r} is not installed; {install_hint(package)}", file=sys.stderr)
  return 1
